# pure1-metrics: read the Pure1 secrets engine's metrics, nothing else. The
# token Prometheus scrapes with (see prometheus.yml) carries only this policy:
#
#   vault policy write pure1-metrics bootstrap/prometheus/metrics-policy.hcl
#   vault token create -policy=pure1-metrics -orphan -period=768h -field=token
#
# The metrics hold counts and times labelled with role and config names, never
# a credential or a key; still, they tell who uses what, so grant them to the
# monitoring system only. If the engine is mounted elsewhere than pure1/,
# change the path.
path "pure1/metrics" {
  capabilities = ["read"]
}
