# bosun as a Nomad job: a group per service, all from one image (Dockerfile), plus Prometheus,
# Grafana and the OpenTelemetry collector. NATS and PostgreSQL are jobs of their own
# (nats.nomad.hcl, postgres.nomad.hcl) or external: the services find them as the Nomad services
# `bosun-nats` and `bosun-postgres`, so an external server only needs registering under that name.
#
#   nomad var put nomad/jobs/bosun @infra/nomad/secrets.example.json   # with real passwords
#   nomad job run infra/nomad/nats.nomad.hcl          # from the repository root: file() paths
#   nomad job run infra/nomad/postgres.nomad.hcl
#   nomad job run -var image=registry.example/bosun:0.1.0 infra/nomad/bosun.nomad.hcl
#
# Each service gets only its own NATS user's password (and portfolio the database's), rendered
# from the Nomad variable nomad/jobs/bosun into its secrets/ dir; health is its metrics endpoint.

variable "image" {
  type    = string
  default = "bosun:latest"
}

variable "replicas" {
  type        = number
  default     = 1
  description = "BOSUN_REPLICAS: copies of every stream and KV bucket (3 on a three-node NATS cluster)"
}

job "bosun" {
  type = "service"

  group "ingest" {
    network {
      port "metrics" {
        static = 9101
      }
    }

    restart {
      attempts = 10
      interval = "5m"
      delay    = "5s"
      mode     = "delay"
    }

    service {
      name     = "bosun-ingest"
      provider = "nomad"
      port     = "metrics"
      tags     = ["bosun-metrics"]

      check {
        type     = "http"
        path     = "/metrics"
        interval = "10s"
        timeout  = "3s"
      }
    }

    task "ingest" {
      driver       = "docker"
      kill_timeout = "30s"

      config {
        image = var.image
        args  = ["run", "ingest", "--config", "/etc/bosun/bosun.toml"]
        ports = ["metrics"]
      }

      env {
        BOSUN_REPLICAS       = var.replicas
        OTEL_TRACES_EXPORTER = "otlp"
      }

      template {
        destination = "secrets/bosun.env"
        env         = true
        change_mode = "restart"
        data        = <<-EOT
          {{ with nomadVar "nomad/jobs/bosun" }}{{ $v := . }}
          {{ range nomadService "bosun-nats" }}BOSUN_NATS_URL_INGEST=nats://ingest:{{ $v.nats_ingest_pass }}@{{ .Address }}:{{ .Port }}{{ end }}
          {{ end }}
          {{ range nomadService "bosun-otel-collector" }}OTEL_EXPORTER_OTLP_ENDPOINT=http://{{ .Address }}:{{ .Port }}{{ end }}
        EOT
      }

      resources {
        cpu    = 300
        memory = 256
      }
    }
  }

  group "signal" {
    network {
      port "metrics" {
        static = 9102
      }
    }

    restart {
      attempts = 10
      interval = "5m"
      delay    = "5s"
      mode     = "delay"
    }

    service {
      name     = "bosun-signal"
      provider = "nomad"
      port     = "metrics"
      tags     = ["bosun-metrics"]

      check {
        type     = "http"
        path     = "/metrics"
        interval = "10s"
        timeout  = "3s"
      }
    }

    task "signal" {
      driver       = "docker"
      kill_timeout = "30s"

      config {
        image = var.image
        args  = ["run", "signal", "--config", "/etc/bosun/bosun.toml"]
        ports = ["metrics"]
      }

      env {
        BOSUN_REPLICAS       = var.replicas
        OTEL_TRACES_EXPORTER = "otlp"
      }

      template {
        destination = "secrets/bosun.env"
        env         = true
        change_mode = "restart"
        data        = <<-EOT
          {{ with nomadVar "nomad/jobs/bosun" }}{{ $v := . }}
          {{ range nomadService "bosun-nats" }}BOSUN_NATS_URL_SIGNAL=nats://signal:{{ $v.nats_signal_pass }}@{{ .Address }}:{{ .Port }}{{ end }}
          {{ end }}
          {{ range nomadService "bosun-otel-collector" }}OTEL_EXPORTER_OTLP_ENDPOINT=http://{{ .Address }}:{{ .Port }}{{ end }}
        EOT
      }

      resources {
        cpu    = 300
        memory = 256
      }
    }
  }

  group "risk" {
    network {
      port "metrics" {
        static = 9103
      }
    }

    restart {
      attempts = 10
      interval = "5m"
      delay    = "5s"
      mode     = "delay"
    }

    service {
      name     = "bosun-risk"
      provider = "nomad"
      port     = "metrics"
      tags     = ["bosun-metrics"]

      check {
        type     = "http"
        path     = "/metrics"
        interval = "10s"
        timeout  = "3s"
      }
    }

    task "risk" {
      driver       = "docker"
      kill_timeout = "30s"

      config {
        image = var.image
        args  = ["run", "risk", "--config", "/etc/bosun/bosun.toml"]
        ports = ["metrics"]
      }

      env {
        BOSUN_REPLICAS       = var.replicas
        OTEL_TRACES_EXPORTER = "otlp"
      }

      template {
        destination = "secrets/bosun.env"
        env         = true
        change_mode = "restart"
        data        = <<-EOT
          {{ with nomadVar "nomad/jobs/bosun" }}{{ $v := . }}
          {{ range nomadService "bosun-nats" }}BOSUN_NATS_URL_RISK=nats://risk:{{ $v.nats_risk_pass }}@{{ .Address }}:{{ .Port }}{{ end }}
          {{ end }}
          {{ range nomadService "bosun-otel-collector" }}OTEL_EXPORTER_OTLP_ENDPOINT=http://{{ .Address }}:{{ .Port }}{{ end }}
        EOT
      }

      resources {
        cpu    = 300
        memory = 256
      }
    }
  }

  group "execution" {
    network {
      port "metrics" {
        static = 9104
      }
    }

    restart {
      attempts = 10
      interval = "5m"
      delay    = "5s"
      mode     = "delay"
    }

    service {
      name     = "bosun-execution"
      provider = "nomad"
      port     = "metrics"
      tags     = ["bosun-metrics"]

      check {
        type     = "http"
        path     = "/metrics"
        interval = "10s"
        timeout  = "3s"
      }
    }

    task "execution" {
      driver       = "docker"
      kill_timeout = "30s"

      config {
        image = var.image
        args  = ["run", "execution", "--config", "/etc/bosun/bosun.toml"]
        ports = ["metrics"]
      }

      env {
        BOSUN_REPLICAS       = var.replicas
        OTEL_TRACES_EXPORTER = "otlp"
      }

      template {
        destination = "secrets/bosun.env"
        env         = true
        change_mode = "restart"
        data        = <<-EOT
          {{ with nomadVar "nomad/jobs/bosun" }}{{ $v := . }}
          {{ range nomadService "bosun-nats" }}BOSUN_NATS_URL_EXECUTION=nats://execution:{{ $v.nats_execution_pass }}@{{ .Address }}:{{ .Port }}{{ end }}
{{ range nomadService "bosun-postgres" }}BOSUN_DATABASE_URL=postgresql://bosun:{{ $v.postgres_password }}@{{ .Address }}:{{ .Port }}/bosun{{ end }}
          {{ end }}
          {{ range nomadService "bosun-otel-collector" }}OTEL_EXPORTER_OTLP_ENDPOINT=http://{{ .Address }}:{{ .Port }}{{ end }}
        EOT
      }

      resources {
        cpu    = 300
        memory = 256
      }
    }
  }

  group "portfolio" {
    network {
      port "metrics" {
        static = 9105
      }
    }

    restart {
      attempts = 10
      interval = "5m"
      delay    = "5s"
      mode     = "delay"
    }

    service {
      name     = "bosun-portfolio"
      provider = "nomad"
      port     = "metrics"
      tags     = ["bosun-metrics"]

      check {
        type     = "http"
        path     = "/metrics"
        interval = "10s"
        timeout  = "3s"
      }
    }

    task "portfolio" {
      driver       = "docker"
      kill_timeout = "30s"

      config {
        image = var.image
        args  = ["run", "portfolio", "--config", "/etc/bosun/bosun.toml"]
        ports = ["metrics"]
      }

      env {
        BOSUN_REPLICAS       = var.replicas
        OTEL_TRACES_EXPORTER = "otlp"
      }

      template {
        destination = "secrets/bosun.env"
        env         = true
        change_mode = "restart"
        data        = <<-EOT
          {{ with nomadVar "nomad/jobs/bosun" }}{{ $v := . }}
          {{ range nomadService "bosun-nats" }}BOSUN_NATS_URL_PORTFOLIO=nats://portfolio:{{ $v.nats_portfolio_pass }}@{{ .Address }}:{{ .Port }}{{ end }}
{{ range nomadService "bosun-postgres" }}BOSUN_DATABASE_URL=postgresql://bosun:{{ $v.postgres_password }}@{{ .Address }}:{{ .Port }}/bosun{{ end }}
          {{ end }}
          {{ range nomadService "bosun-otel-collector" }}OTEL_EXPORTER_OTLP_ENDPOINT=http://{{ .Address }}:{{ .Port }}{{ end }}
        EOT
      }

      resources {
        cpu    = 300
        memory = 256
      }
    }
  }

  group "alerts" {
    network {
      port "metrics" {
        static = 9106
      }
    }

    restart {
      attempts = 10
      interval = "5m"
      delay    = "5s"
      mode     = "delay"
    }

    service {
      name     = "bosun-alerts"
      provider = "nomad"
      port     = "metrics"
      tags     = ["bosun-metrics"]

      check {
        type     = "http"
        path     = "/metrics"
        interval = "10s"
        timeout  = "3s"
      }
    }

    task "alerts" {
      driver       = "docker"
      kill_timeout = "30s"

      config {
        image = var.image
        args  = ["run", "alerts", "--config", "/etc/bosun/bosun.toml"]
        ports = ["metrics"]
      }

      env {
        BOSUN_REPLICAS       = var.replicas
        OTEL_TRACES_EXPORTER = "otlp"
      }

      template {
        destination = "secrets/bosun.env"
        env         = true
        change_mode = "restart"
        data        = <<-EOT
          {{ with nomadVar "nomad/jobs/bosun" }}{{ $v := . }}
          {{ range nomadService "bosun-nats" }}BOSUN_NATS_URL_ALERTS=nats://alerts:{{ $v.nats_alerts_pass }}@{{ .Address }}:{{ .Port }}{{ end }}
          {{ end }}
          {{ range nomadService "bosun-otel-collector" }}OTEL_EXPORTER_OTLP_ENDPOINT=http://{{ .Address }}:{{ .Port }}{{ end }}
        EOT
      }

      resources {
        cpu    = 300
        memory = 256
      }
    }
  }

  group "prometheus" {
    network {
      port "http" {
        static = 9090
      }
    }

    ephemeral_disk {
      sticky  = true
      migrate = true
      size    = 4096
    }

    service {
      name     = "bosun-prometheus"
      provider = "nomad"
      port     = "http"

      check {
        type     = "http"
        path     = "/-/ready"
        interval = "10s"
        timeout  = "3s"
      }
    }

    task "prometheus" {
      driver = "docker"

      config {
        image = "prom/prometheus:v3.5.0"
        args  = ["--config.file=/local/prometheus.yml", "--storage.tsdb.path=/alloc/data/prometheus",
                 "--storage.tsdb.retention.time=30d"]
        ports = ["http"]
      }

      # the scrape jobs of infra/prometheus/prometheus.yml, targets from Nomad's services
      template {
        destination = "local/prometheus.yml"
        change_mode = "signal"
        change_signal = "SIGHUP"
        data        = file("infra/prometheus/prometheus.nomad.yml.tpl")
      }

      resources {
        cpu    = 500
        memory = 512
      }
    }
  }

  group "grafana" {
    network {
      port "http" {
        static = 3000
      }
    }

    service {
      name     = "bosun-grafana"
      provider = "nomad"
      port     = "http"

      check {
        type     = "http"
        path     = "/api/health"
        interval = "10s"
        timeout  = "3s"
      }
    }

    task "grafana" {
      driver = "docker"

      config {
        image = "grafana/grafana:12.1.1"
        ports = ["http"]
        mount {
          type   = "bind"
          source = "local/provisioning"
          target = "/etc/grafana/provisioning"
        }
        mount {
          type   = "bind"
          source = "local/dashboards"
          target = "/etc/grafana/dashboards"
        }
      }

      env {
        GF_USERS_ALLOW_SIGN_UP                = "false"
        GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH = "/etc/grafana/dashboards/overview.json"
      }

      template {
        destination = "secrets/grafana.env"
        env         = true
        data        = <<-EOT
          {{ with nomadVar "nomad/jobs/bosun" }}GF_SECURITY_ADMIN_PASSWORD={{ .grafana_admin_password }}{{ end }}
          {{ range nomadService "bosun-prometheus" }}BOSUN_PROMETHEUS_URL=http://{{ .Address }}:{{ .Port }}{{ end }}
        EOT
      }

      # provisioning and dashboards as committed; delimiters that the JSON never holds, so that
      # the dashboards' {{legend}} formats pass through untouched
      template {
        destination     = "local/provisioning/datasources/prometheus.yaml"
        left_delimiter  = "@@{"
        right_delimiter = "}@@"
        data            = file("infra/grafana/provisioning/datasources/prometheus.yaml")
      }
      template {
        destination     = "local/provisioning/dashboards/bosun.yaml"
        left_delimiter  = "@@{"
        right_delimiter = "}@@"
        data            = file("infra/grafana/provisioning/dashboards/bosun.yaml")
      }
      template {
        destination     = "local/dashboards/overview.json"
        left_delimiter  = "@@{"
        right_delimiter = "}@@"
        data            = file("infra/grafana/dashboards/overview.json")
      }
      template {
        destination     = "local/dashboards/services.json"
        left_delimiter  = "@@{"
        right_delimiter = "}@@"
        data            = file("infra/grafana/dashboards/services.json")
      }
      template {
        destination     = "local/dashboards/clients.json"
        left_delimiter  = "@@{"
        right_delimiter = "}@@"
        data            = file("infra/grafana/dashboards/clients.json")
      }

      resources {
        cpu    = 300
        memory = 256
      }
    }
  }

  group "otel-collector" {
    network {
      port "otlp" {
        static = 4318
      }
      port "metrics" {
        static = 8888
      }
      port "health" {
        static = 13133
      }
    }

    service {
      name     = "bosun-otel-collector"
      provider = "nomad"
      port     = "otlp"

      check {
        type     = "http"
        port     = "health"
        path     = "/"
        interval = "10s"
        timeout  = "3s"
      }
    }

    service {
      name     = "bosun-otel-collector-metrics"
      provider = "nomad"
      port     = "metrics"
      tags     = ["otel-collector-metrics"]
    }

    task "otel-collector" {
      driver = "docker"

      config {
        image = "otel/opentelemetry-collector:0.132.0"
        args  = ["--config=/local/collector.yaml"]
        ports = ["otlp", "metrics", "health"]
      }

      template {
        destination     = "local/collector.yaml"
        left_delimiter  = "@@{"
        right_delimiter = "}@@"
        data            = file("infra/otel/collector.yaml")
      }

      resources {
        cpu    = 200
        memory = 320
      }
    }
  }
}
