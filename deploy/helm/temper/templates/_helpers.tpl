{{- define "temper.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "temper.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "temper.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "temper.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "temper.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "temper.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "api") */}}
{{- define "temper.selectorLabels" -}}
app.kubernetes.io/name: {{ include "temper.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "temper.componentLabels" -}}
{{ include "temper.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* An image of the chart: (dict "root" $ "component" "api") */}}
{{- define "temper.image" -}}
{{- $image := .root.Values.image -}}
{{- printf "%s%s/%s:%s" $image.registry $image.prefix .component (default .root.Chart.AppVersion $image.tag) -}}
{{- end -}}

{{- define "temper.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "temper.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "temper.secretName" -}}
{{- default (printf "%s-secrets" (include "temper.fullname" .)) .Values.existingSecret -}}
{{- end -}}

{{/* The non-secret settings every Temper process reads (a ConfigMap's data). */}}
{{- define "temper.configData" -}}
TEMPER_ENVIRONMENT: {{ .Values.config.environment | quote }}
TEMPER_DATA_DIR: "/data"
TEMPER_LOG_JSON: "true"
TEMPER_LOG_LEVEL: {{ .Values.config.logLevel | quote }}
TEMPER_DATABASE_HOST: {{ .Values.database.host | quote }}
TEMPER_DATABASE_PORT: {{ .Values.database.port | quote }}
TEMPER_DATABASE_NAME: {{ .Values.database.name | quote }}
TEMPER_DATABASE_USER: {{ .Values.database.user | quote }}
TEMPER_BROKER_URL: {{ .Values.broker.url | quote }}
TEMPER_OBJECT_STORE_URL: {{ .Values.objectStore.url | quote }}
TEMPER_MODEL_REPOSITORY_URL: {{ .Values.objectStore.modelRepositoryUrl | quote }}
TEMPER_OBJECT_STORE_REGION: {{ .Values.objectStore.region | quote }}
{{- with .Values.objectStore.publicUrl }}
TEMPER_OBJECT_STORE_PUBLIC_URL: {{ . | quote }}
{{- end }}
{{- if .Values.triton.enabled }}
TEMPER_TRITON_URL: {{ printf "%s-triton:8001" (include "temper.fullname" .) | quote }}
{{- end }}
TEMPER_TRITON_RECONCILE_INTERVAL: {{ printf "PT%dS" (int .Values.config.tritonReconcileIntervalSeconds) | quote }}
{{- /* GPU-only methods (qlora) are accepted when some enabled worker asks for a GPU. */}}
{{- $gpuWorkers := false }}
{{- range $name, $worker := .Values.workers }}
{{- if and $worker (gt (int (default 0 $worker.gpus)) 0) }}{{ $gpuWorkers = true }}{{ end }}
{{- end }}
TEMPER_GPU_WORKERS: {{ $gpuWorkers | quote }}
{{- /* Jobs that may hold a worker at once: every train-queue process, plus one job validating or
       evaluating on the other workers meanwhile. More wait queued, fairly across teams. */}}
{{- $trainSlots := 0 }}
{{- range $name, $worker := .Values.workers }}
{{- if and $worker (has "train" $worker.queues) }}{{ $trainSlots = add $trainSlots (mul (int $worker.replicas) (int $worker.concurrency)) }}{{ end }}
{{- end }}
TEMPER_DISPATCH_SLOTS: {{ add $trainSlots 1 | quote }}
# Caches of libraries that would otherwise write under a read-only home.
HF_HOME: "/tmp/huggingface"
MPLCONFIGDIR: "/tmp/matplotlib"
{{- range $name, $value := .Values.config.extraEnv }}
{{ $name }}: {{ $value | quote }}
{{- end }}
{{- end -}}

{{/* The chart's own Secret's data, when no existingSecret is named. */}}
{{- define "temper.secretData" -}}
database-password: {{ required "secrets.databasePassword (or existingSecret) is required" .Values.secrets.databasePassword | b64enc | quote }}
object-store-access-key: {{ required "secrets.objectStoreAccessKey (or existingSecret) is required" .Values.secrets.objectStoreAccessKey | b64enc | quote }}
object-store-secret-key: {{ required "secrets.objectStoreSecretKey (or existingSecret) is required" .Values.secrets.objectStoreSecretKey | b64enc | quote }}
api-key-pepper: {{ required "secrets.apiKeyPepper (or existingSecret) is required" .Values.secrets.apiKeyPepper | b64enc | quote }}
webhook-secret-keys: {{ required "secrets.webhookSecretKeys (or existingSecret) is required" .Values.secrets.webhookSecretKeys | b64enc | quote }}
{{- with .Values.secrets.bootstrapAdminKey }}
bootstrap-admin-key: {{ . | b64enc | quote }}
{{- end }}
{{- end -}}

{{/* env + envFrom of a Temper container: (dict "root" $ "configMap" name "secret" name) */}}
{{- define "temper.env" -}}
envFrom:
  - configMapRef:
      name: {{ .configMap }}
env:
  - name: TEMPER_DATABASE_PASSWORD
    valueFrom: { secretKeyRef: { name: {{ .secret }}, key: database-password } }
  - name: TEMPER_OBJECT_STORE_ACCESS_KEY
    valueFrom: { secretKeyRef: { name: {{ .secret }}, key: object-store-access-key } }
  - name: TEMPER_OBJECT_STORE_SECRET_KEY
    valueFrom: { secretKeyRef: { name: {{ .secret }}, key: object-store-secret-key } }
  - name: TEMPER_API_KEY_PEPPER
    valueFrom: { secretKeyRef: { name: {{ .secret }}, key: api-key-pepper } }
  - name: TEMPER_WEBHOOK_SECRET_KEYS
    valueFrom: { secretKeyRef: { name: {{ .secret }}, key: webhook-secret-keys } }
  - name: TEMPER_BOOTSTRAP_ADMIN_KEY
    valueFrom: { secretKeyRef: { name: {{ .secret }}, key: bootstrap-admin-key, optional: true } }
{{- end -}}

{{/* /data and /tmp as emptyDirs: the root filesystem is read-only. */}}
{{- define "temper.scratchMounts" -}}
- { name: data, mountPath: /data }
- { name: tmp, mountPath: /tmp }
{{- end -}}

{{- define "temper.scratchVolumes" -}}
- { name: data, emptyDir: {} }
- { name: tmp, emptyDir: {} }
{{- end -}}

{{/* Scheduling of a component: its nodeSelector, tolerations and affinity. */}}
{{- define "temper.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Resources with the GPUs added to the limits: (dict "resources" ... "gpus" n) */}}
{{- define "temper.resources" -}}
{{- $resources := deepCopy (default dict .resources) -}}
{{- if gt (int .gpus) 0 -}}
{{- $limits := default dict $resources.limits -}}
{{- $_ := set $limits "nvidia.com/gpu" (int .gpus) -}}
{{- $_ := set $resources "limits" $limits -}}
{{- end -}}
{{- toYaml $resources -}}
{{- end -}}

{{/* Triton's model repository path: s3s:// (TLS) is written s3://https:// for Triton. */}}
{{- define "temper.tritonRepository" -}}
{{- $url := .Values.objectStore.modelRepositoryUrl -}}
{{- if hasPrefix "s3s://" $url -}}
{{- printf "s3://https://%s" (trimPrefix "s3s://" $url) -}}
{{- else -}}
{{- $url -}}
{{- end -}}
{{- end -}}
