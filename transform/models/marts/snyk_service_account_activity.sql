-- What service accounts, tokens and API keys did and what was done to them: every
-- *.service_account.* event, every event about a token, API key or secret, and api.access
-- (requests to the API, which Snyk logs only when asked; see the tap's `events` setting).
with activity as (
    select
        events.*,
        case
            when events.event_scope = 'api' then 'api_access'
            when {{ snyk_matches('events.event', '(^|[.])service_accounts?([.]|$)') }} then 'service_account'
            else 'token'
        end as activity_kind
    from {{ ref('stg_snyk__audit_events') }} as events
    where events.event_scope = 'api'
        or {{ snyk_matches('events.event', '(^|[.])service_accounts?([.]|$)') }}
        or {{ snyk_matches('events.event', '(token|api_?key|secret)') }}
)

select
    activity.event_id,
    activity.created,
    activity.event,
    activity.activity_kind,
    {{ snyk_service_account_id('activity') }} as service_account_id,
    {{ snyk_content_role('activity') }} as service_account_role,

    {{ snyk_actor_columns('activity') }},

    activity.org_id,
    activity.org_name,
    activity.group_id,
    activity.project_id,
    activity.project_name,
    activity.source,
    activity.content
from activity
