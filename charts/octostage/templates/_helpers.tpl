{{/* Labels on every object: the name, never app.kubernetes.io/managed-by=octostage (that
label marks what octostage itself owns). */}}
{{- define "octostage.labels" -}}
app.kubernetes.io/name: octostage
{{- end -}}
