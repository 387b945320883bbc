{#-
  One row per alert ever raised (alert_id), with the builds that first and last saw it: the time
  each `dbt build` (or `run`) started, the same for every row it wrote. Incremental: each build
  merges the current alerts in, keeping an alert's first_seen_at and setting last_seen_at to the
  build's time; an alert that no longer fires keeps its row and its older last_seen_at.

  New since the previous build: the alerts of snyk_alerts whose first_seen_at = last_seen_at
  (scripts/new-alerts counts them). `--full-refresh` forgets the history: everything is new.
-#}
{{ config(materialized='incremental', unique_key='alert_id') }}

{%- set this_build -%}
    cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S.%f") }}+00:00' as timestamptz)
{%- endset %}

select
    alerts.alert_id,
    alerts.rule_id,
    alerts.severity,
    alerts.event_id,
    alerts.created,
{%- if is_incremental() %}
    coalesce(previous.first_seen_at, {{ this_build }}) as first_seen_at,
{%- else %}
    {{ this_build }} as first_seen_at,
{%- endif %}
    {{ this_build }} as last_seen_at
from {{ ref('snyk_alerts') }} as alerts
{%- if is_incremental() %}
left join {{ this }} as previous
    on previous.alert_id = alerts.alert_id
{%- endif %}
