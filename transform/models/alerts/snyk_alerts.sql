-- One row per rule that fires on an audit event (snyk_alert_matches), with what an analyst needs
-- beside it: the rule's title, runbook and reference (seeds/snyk_alert_rules.csv), who acted,
-- what was acted on, where, and the key an alert tool groups on.
-- alert_id is md5 of the rule id and the event id: the same rule on the same event gives the
-- same id on every build, in every database.
with matches as (
    select * from {{ ref('snyk_alert_matches') }}
),

events as (
    select
        staged.*,
        {{ snyk_subject_user_id('staged') }} as subject_user_id
    from {{ ref('stg_snyk__audit_events') }} as staged
)

select
    md5(matches.rule_id || ':' || matches.event_id) as alert_id,
    matches.rule_id,
    rules.title,
    matches.severity,
    events.event_id,
    events.created,
    events.event,

    {{ snyk_actor_columns('events') }},

    events.subject_user_id,
    coalesce(subjects.user_name, events.content ->> 'displayName', events.content ->> 'name')
        as subject_name,
    coalesce(subjects.user_email, events.content ->> 'email') as subject_email,
    {{ snyk_role_before('events') }} as role_before,
    coalesce({{ snyk_role_after('events') }}, {{ snyk_content_role('events') }}) as role_after,
    {{ snyk_service_account_id('events') }} as service_account_id,
    events.project_id,
    events.project_name,
    case when {{ snyk_matches('events.event', '(^|[.]|_)polic(y|ies)([.]|$|_)') }}
        then events.content ->> 'publicId'
    end as policy_id,
    coalesce(events.content ->> 'integrationPublicId', events.content ->> 'integrationId')
        as integration_id,

    events.org_id,
    events.org_name,
    events.group_id,
    events.group_name,
    events.source,
    matches.dedup_key,
    rules.runbook,
    rules.reference,
    events.content
from matches
inner join events
    on events.event_id = matches.event_id
inner join {{ ref('snyk_alert_rules') }} as rules
    on rules.rule_id = matches.rule_id
left join {{ ref('stg_snyk__users') }} as subjects
    on subjects.user_id = events.subject_user_id
