# PostgreSQL for bosun's portfolio as its own Nomad job (or external: register it as the Nomad
# service `bosun-postgres`). Portfolio applies its migrations itself at start.

job "bosun-postgres" {
  type = "service"

  group "postgres" {
    network {
      port "db" {
        static = 5432
      }
    }

    volume "data" {
      type   = "host"
      source = "bosun-postgres"
    }

    restart {
      attempts = 10
      interval = "5m"
      delay    = "5s"
      mode     = "delay"
    }

    service {
      name     = "bosun-postgres"
      provider = "nomad"
      port     = "db"

      check {
        type     = "tcp"
        interval = "10s"
        timeout  = "3s"
      }
    }

    task "postgres" {
      driver = "docker"

      config {
        image = "postgres:17-alpine"
        ports = ["db"]
      }

      volume_mount {
        volume      = "data"
        destination = "/var/lib/postgresql/data"
      }

      env {
        POSTGRES_USER = "bosun"
        POSTGRES_DB   = "bosun"
      }

      template {
        destination = "secrets/postgres.env"
        env         = true
        data        = <<-EOT
          {{ with nomadVar "nomad/jobs/bosun" }}POSTGRES_PASSWORD={{ .postgres_password }}{{ end }}
        EOT
      }

      resources {
        cpu    = 500
        memory = 512
      }
    }
  }
}
