{{/* Names ------------------------------------------------------------------------------- */}}
{{- define "taskflow.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "taskflow.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "taskflow.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "taskflow.labels" -}}
app.kubernetes.io/name: {{ include "taskflow.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{ include "taskflow.commonLabels" . }}
{{- end -}}

{{/* The labels besides name/instance (pod templates add them to the selector labels). */}}
{{- define "taskflow.commonLabels" -}}
helm.sh/chart: {{ include "taskflow.chart" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of one component: (dict "ctx" $ "component" "operator") */}}
{{- define "taskflow.selectorLabels" -}}
app.kubernetes.io/name: {{ include "taskflow.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "taskflow.operatorName" -}}
{{- printf "%s-operator" (include "taskflow.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "taskflow.operatorServiceAccount" -}}
{{- if .Values.operator.serviceAccount.create -}}
{{- default (include "taskflow.operatorName" .) .Values.operator.serviceAccount.name -}}
{{- else -}}
{{- required "operator.serviceAccount.name is required when operator.serviceAccount.create is false" .Values.operator.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "taskflow.workerServiceAccount" -}}
{{- if .Values.workerServiceAccount.create -}}
{{- default (printf "%s-worker" (include "taskflow.fullname" .)) .Values.workerServiceAccount.name -}}
{{- else -}}
{{- required "workerServiceAccount.name is required when workerServiceAccount.create is false" .Values.workerServiceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "taskflow.postgresName" -}}
{{- printf "%s-postgresql" (include "taskflow.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "taskflow.redisName" -}}
{{- printf "%s-redis" (include "taskflow.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "taskflow.postgresSecretName" -}}
{{- default (include "taskflow.postgresName" .) .Values.postgresql.inCluster.existingSecret -}}
{{- end -}}

{{/* Image reference: (dict "image" .Values.image.operator "ctx" $) */}}
{{- define "taskflow.image" -}}
{{- printf "%s:%s" .image.repository (default .ctx.Chart.AppVersion .image.tag) -}}
{{- end -}}

{{/* Security ------------------------------------------------------------------------------ */}}
{{/* Pod-level security context of pod security standard "restricted". */}}
{{- define "taskflow.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid | default 10001 }}
runAsGroup: {{ .uid | default 10001 }}
fsGroup: {{ .uid | default 10001 }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "taskflow.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Connection settings ------------------------------------------------------------------- */}}
{{/* The env entries every Taskflow container gets: PostgreSQL, Redis and shared settings.
     Secrets are only referenced (secretKeyRef), never read by the chart. */}}
{{- define "taskflow.connectionEnv" -}}
{{- $pg := .Values.postgresql -}}
{{- $ext := $pg.external -}}
{{- if $pg.inCluster.enabled }}
- name: PGPASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "taskflow.postgresSecretName" . }}
      key: password
- name: TASKFLOW_POSTGRES_DSN
  value: {{ printf "postgresql://%s@%s:5432/%s" $pg.inCluster.user (include "taskflow.postgresName" .) $pg.inCluster.database | quote }}
{{- else if $ext.dsnSecret.name }}
- name: TASKFLOW_POSTGRES_DSN
  valueFrom:
    secretKeyRef:
      name: {{ $ext.dsnSecret.name }}
      key: {{ $ext.dsnSecret.key }}
{{- else }}
{{- if $ext.passwordSecret.name }}
- name: PGPASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $ext.passwordSecret.name }}
      key: {{ $ext.passwordSecret.key }}
{{- end }}
- name: TASKFLOW_POSTGRES_DSN
  value: {{ printf "postgresql://%s@%s:%d/%s" $ext.user (required "set postgresql.external.host, postgresql.external.dsnSecret.name, or postgresql.inCluster.enabled=true" $ext.host) (int $ext.port) $ext.database | quote }}
{{- end }}
- name: PGSSLMODE
  value: {{ ternary "disable" $pg.sslmode $pg.inCluster.enabled | quote }}
{{- if include "taskflow.hasPostgresCA" . }}
- name: PGSSLROOTCERT
  value: {{ printf "/etc/taskflow/postgresql-ca/%s" $pg.caBundle.key | quote }}
{{- end }}
{{- $redis := .Values.redis }}
- name: TASKFLOW_REDIS_ADDR
{{- if $redis.inCluster.enabled }}
  value: {{ printf "%s:6379" (include "taskflow.redisName" .) | quote }}
{{- else }}
  value: {{ required "set redis.external.addr, or redis.inCluster.enabled=true" $redis.external.addr | quote }}
{{- end }}
- name: TASKFLOW_REDIS_DB
  value: {{ $redis.db | quote }}
- name: TASKFLOW_REDIS_TLS
  value: {{ and $redis.tls (not $redis.inCluster.enabled) | quote }}
{{- if and (not $redis.inCluster.enabled) $redis.external.passwordSecret.name }}
- name: TASKFLOW_REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $redis.external.passwordSecret.name }}
      key: {{ $redis.external.passwordSecret.key }}
{{- end }}
- name: TASKFLOW_LOCK_TTL
  value: {{ .Values.config.lockTtlSeconds | quote }}
- name: TASKFLOW_POLL_INTERVAL
  value: {{ .Values.config.pollIntervalSeconds | quote }}
- name: TASKFLOW_LOG_LEVEL
  value: {{ .Values.config.logLevel | quote }}
{{- with .Values.config.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "taskflow.hasPostgresCA" -}}
{{- if and (not .Values.postgresql.inCluster.enabled) (or .Values.postgresql.caBundle.configMapName .Values.postgresql.caBundle.secretName) -}}
true
{{- end -}}
{{- end -}}

{{/* Volumes every Taskflow pod has: /tmp (the root filesystem is read-only) and the CA bundle. */}}
{{- define "taskflow.volumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: 256Mi
{{- if include "taskflow.hasPostgresCA" . }}
- name: postgresql-ca
{{- if .Values.postgresql.caBundle.configMapName }}
  configMap:
    name: {{ .Values.postgresql.caBundle.configMapName }}
{{- else }}
  secret:
    secretName: {{ .Values.postgresql.caBundle.secretName }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "taskflow.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if include "taskflow.hasPostgresCA" . }}
- name: postgresql-ca
  mountPath: /etc/taskflow/postgresql-ca
  readOnly: true
{{- end }}
{{- end -}}

{{/* Namespaces the operator is restricted to (watchNamespaces plus the release namespace, where
     the worker Deployments live), as a list; empty when it watches all namespaces. */}}
{{- define "taskflow.operatorNamespaces" -}}
{{- if .Values.watchNamespaces -}}
{{- toJson (uniq (append (.Values.watchNamespaces | toStrings) .Release.Namespace)) -}}
{{- else -}}
[]
{{- end -}}
{{- end -}}

{{/* RBAC rules of the operator in a namespace it works in. Least privilege: no wildcards, no
     Secrets, no create/delete of workloads (it only scales Deployments and annotates Pods). */}}
{{- define "taskflow.operatorNamespacedRules" -}}
- apiGroups: ["taskflow.io"]
  resources: ["taskdags"]
  verbs: ["get", "list", "watch", "patch", "update"]
- apiGroups: ["taskflow.io"]
  resources: ["taskdags/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["apps"]
  resources: ["deployments/scale"]
  verbs: ["get", "patch", "update"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch", "patch"]
{{- end -}}

{{/* Cluster-scoped reads kopf needs to discover resources and namespaces. */}}
{{- define "taskflow.operatorClusterRules" -}}
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["list", "watch"]
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["get", "list", "watch"]
{{- end -}}

{{/* Leader election / peering Leases, only in the release namespace. */}}
{{- define "taskflow.operatorLeaseRules" -}}
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["get", "list", "watch", "create", "update", "patch"]
{{- end -}}

{{/* REST API authentication env of the operator container. */}}
{{- define "taskflow.apiAuthEnv" -}}
{{- $auth := .Values.api.auth -}}
- name: TASKFLOW_AUTH_MODE
  value: {{ $auth.mode | quote }}
{{- if include "taskflow.apiTokens" . }}
- name: TASKFLOW_AUTH_TOKENS_FILE
  value: {{ printf "/etc/taskflow/api-tokens/%s" $auth.tokensSecret.key | quote }}
{{- end }}
{{- if include "taskflow.apiKube" . }}
- name: TASKFLOW_AUTH_KUBE_AUDIENCE
  value: {{ $auth.kubeAudience | quote }}
{{- with $auth.kubeAllowedUsers }}
- name: TASKFLOW_AUTH_KUBE_ALLOWED_USERS
  value: {{ join "," . | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "taskflow.apiTokens" -}}
{{- if has .Values.api.auth.mode (list "tokens" "tokens+kubernetes") -}}
{{- $_ := required "api.auth.mode uses tokens: set api.auth.tokensSecret.name to a Secret holding the tokens file (or choose api.auth.mode=kubernetes)" .Values.api.auth.tokensSecret.name -}}
true
{{- end -}}
{{- end -}}

{{- define "taskflow.apiKube" -}}
{{- if has .Values.api.auth.mode (list "kubernetes" "tokens+kubernetes") -}}
true
{{- end -}}
{{- end -}}
