{{/* The NOTES of the command path (docs/security.md, "Commands"): how to approve, and the
RBAC it takes. Included at the end of NOTES.txt. */}}
{{- define "canary.commandNotes" }}

Approving, promoting, aborting, retrying: a RolloutCommand, which RBAC grants apart from
editing the Rollout (docs/security.md, "Commands"):
  kubectl canary approve NAME -n NAMESPACE      # the same as: canary approve NAME -n NAMESPACE
{{- if .Values.commands.approverRole.create }}
It takes ClusterRole {{ include "canary.fullname" . }}-approver{{ with .Values.commands.approverRole.aggregateTo }} (aggregated into {{ join ", " . }}){{ end }}, bound where one approves:
  kubectl -n NAMESPACE create rolebinding USER-approves --clusterrole={{ include "canary.fullname" . }}-approver --user=USER
{{- else }}
It takes, in that namespace: create, get, list on rolloutcommands.canary.dev; get, list,
watch on rollouts.canary.dev; get on deployments; create on events
(--set commands.approverRole.create=true makes ClusterRole {{ include "canary.fullname" . }}-approver of it).
{{- end }}
{{- if .Values.commands.admissionPolicy.enabled }}
ValidatingAdmissionPolicy {{ include "canary.fullname" . }}-rollout-commands refuses a command
whose spec.user is not the user creating it.
{{- else }}
commands.admissionPolicy.enabled is off: a command's spec.user is what its creator wrote, not proven.
{{- end }}
{{- end }}
