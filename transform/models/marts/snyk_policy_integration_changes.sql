-- Changes to what Snyk enforces and what it is connected to: *.policy.* (security, license and
-- ignore policies), *.integration.* (SCM, registry, Jira, ... integrations) and settings edits
-- of orgs, groups and projects (any *settings* event, and org.edit / group.edit).
with changes as (
    select
        events.*,
        case
            when {{ snyk_matches('events.event', '(^|[.]|_)polic(y|ies)([.]|$|_)') }} then 'policy'
            when {{ snyk_matches('events.event', '(^|[.])integrations?([.]|$)') }} then 'integration'
            else 'settings'
        end as change_kind
    from {{ ref('stg_snyk__audit_events') }} as events
    where {{ snyk_matches('events.event', '(^|[.]|_)polic(y|ies)([.]|$|_)') }}
        or {{ snyk_matches('events.event', '(^|[.])integrations?([.]|$)') }}
        or {{ snyk_matches('events.event', 'settings') }}
        or {{ snyk_matches('events.event', '^(org|group)[.]edit$') }}
)

select
    changes.event_id,
    changes.created,
    changes.event,
    changes.change_kind,

    {{ snyk_actor_columns('changes') }},

    changes.org_id,
    changes.org_name,
    changes.group_id,
    changes.project_id,
    changes.project_name,
    changes.content ->> 'integrationId' as integration_id,
    changes.content -> 'before' as before,
    changes.content -> 'after' as after,
    changes.source,
    changes.content
from changes
