# NATS for bosun as its own Nomad job: one server with JetStream and the per-service users of
# infra/nats/ (run from the repository root: the file() paths are relative to it). For the
# three-node cluster, run infra/nats/cluster/node-N.conf the same way, one group per node, and
# the bosun job with -var replicas=3. An external server works as well: register it as the Nomad
# service `bosun-nats`.

job "bosun-nats" {
  type = "service"

  group "nats" {
    network {
      port "client" {
        static = 4222
      }
    }

    # JetStream's files outlive the allocation: a host volume declared in the client's config
    volume "data" {
      type   = "host"
      source = "bosun-nats"
    }

    restart {
      attempts = 10
      interval = "5m"
      delay    = "5s"
      mode     = "delay"
    }

    service {
      name     = "bosun-nats"
      provider = "nomad"
      port     = "client"

      # monitoring stays on the container's loopback (bosun.conf): check the client port
      check {
        type     = "tcp"
        interval = "10s"
        timeout  = "3s"
      }
    }

    task "nats" {
      driver = "docker"

      config {
        image = "nats:2.11-alpine"
        args  = ["-c", "/local/bosun.conf", "-a", "0.0.0.0"]
        ports = ["client"]
      }

      volume_mount {
        volume      = "data"
        destination = "/data"
      }

      env {
        BOSUN_NATS_STORE_DIR = "/data/jetstream"
      }

      template {
        destination     = "local/bosun.conf"
        left_delimiter  = "@@{"
        right_delimiter = "}@@"
        data            = file("infra/nats/bosun.conf")
      }
      template {
        destination     = "local/users.conf"
        left_delimiter  = "@@{"
        right_delimiter = "}@@"
        data            = file("infra/nats/users.conf")
      }
      template {
        destination = "secrets/nats.env"
        env         = true
        data        = <<-EOT
          {{ with nomadVar "nomad/jobs/bosun" }}
          BOSUN_NATS_ADMIN_PASS={{ .nats_admin_pass }}
          BOSUN_NATS_OPERATOR_PASS={{ .nats_operator_pass }}
          BOSUN_NATS_INGEST_PASS={{ .nats_ingest_pass }}
          BOSUN_NATS_SIGNAL_PASS={{ .nats_signal_pass }}
          BOSUN_NATS_RISK_PASS={{ .nats_risk_pass }}
          BOSUN_NATS_EXECUTION_PASS={{ .nats_execution_pass }}
          BOSUN_NATS_PORTFOLIO_PASS={{ .nats_portfolio_pass }}
          BOSUN_NATS_ALERTS_PASS={{ .nats_alerts_pass }}
          {{ end }}
        EOT
      }

      resources {
        cpu    = 500
        memory = 512
      }
    }
  }
}
