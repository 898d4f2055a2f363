{{- define "temper.env" -}}
- { name: TEMPER_ENVIRONMENT, value: production }
- { name: TEMPER_DATA_DIR, value: /data }
- { name: TEMPER_LOG_JSON, value: "true" }
- { name: TEMPER_BROKER_URL, value: {{ .Values.config.brokerUrl | quote }} }
- { name: TEMPER_OBJECT_STORE_URL, value: {{ .Values.config.objectStoreUrl | quote }} }
- { name: TEMPER_OBJECT_STORE_ACCESS_KEY, value: {{ .Values.config.objectStoreAccessKey | quote }} }
- { name: TEMPER_MODEL_REPOSITORY_URL, value: {{ .Values.config.modelRepositoryUrl | quote }} }
- { name: TEMPER_TRITON_URL, value: {{ .Values.config.tritonUrl | quote }} }
- name: TEMPER_DATABASE_URL
  valueFrom: { secretKeyRef: { name: {{ .Values.existingSecret }}, key: database-url } }
- name: TEMPER_OBJECT_STORE_SECRET_KEY
  valueFrom: { secretKeyRef: { name: {{ .Values.existingSecret }}, key: object-store-secret-key } }
- name: TEMPER_API_KEY_PEPPER
  valueFrom: { secretKeyRef: { name: {{ .Values.existingSecret }}, key: api-key-pepper } }
- name: TEMPER_BOOTSTRAP_ADMIN_KEY
  valueFrom: { secretKeyRef: { name: {{ .Values.existingSecret }}, key: bootstrap-admin-key } }
{{- end -}}
