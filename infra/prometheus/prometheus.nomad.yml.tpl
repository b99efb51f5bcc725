# infra/prometheus/prometheus.yml's jobs under Nomad (a template of the bosun job's prometheus
# group): the targets are the Nomad services tagged bosun-metrics, re-rendered as they move.
global:
  scrape_interval: 15s
  evaluation_interval: 15s

scrape_configs:
  - job_name: bosun
    static_configs:
      - targets:
{{- range nomadServices }}{{ if .Tags | contains "bosun-metrics" }}{{ range nomadService .Name }}
          - {{ .Address }}:{{ .Port }}{{ end }}{{ end }}{{ end }}
  - job_name: otel-collector
    static_configs:
      - targets:
{{- range nomadService "bosun-otel-collector-metrics" }}
          - {{ .Address }}:{{ .Port }}{{ end }}
