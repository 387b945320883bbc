-- Which rule fires on which audit event, at which severity: one row per (rule_id, event_id).
--
-- The rules are data (seeds/snyk_alert_rules.csv). A rule whose `logic` is empty is its event
-- list: it fires on every event of those types, at the rule's severity (`event_list_rules`
-- below). A rule with `logic` has its block below, one CTE named after it and nowhere else: a
-- suppression, a severity that depends on the event, a dedup key of its own, or a correlation
-- of several events. Each block returns rule_id, event_id, severity and dedup_on (what its
-- alerts are grouped on, after the rule id: see snyk_alerts.dedup_key).
--
-- The blocks read the REST API's fields: user_id (the actor; Panther's rules read the v1 log's
-- userId), org_id, group_id, project_id; `content` is as Snyk writes it in both.

{#- Panther's default dedup: the actor, the org, the group and the event type. -#}
{%- set by_actor_and_event -%}
    coalesce(user_id, '-') || ':' || coalesce(org_id, '-') || ':' || coalesce(group_id, '-')
    || ':' || event
{%- endset %}

with staged as (
    select * from {{ ref('stg_snyk__audit_events') }}
),

events as (
    select
        staged.event_id,
        staged.created,
        staged.event,
        staged.user_id,
        staged.org_id,
        staged.group_id,
        staged.project_id,
        staged.content,
        {{ snyk_subject_user_id('staged') }} as subject_user_id,
        {{ snyk_role_after('staged') }} as role_after
    from staged
    -- An org event read through both the org's log and its group's log is staged twice (the
    -- group's copy names the group): it raises its alerts once, from the org's copy.
    where not (
        staged.source = 'group'
        and exists (
            select 1
            from staged as twin
            where twin.source = 'org'
                and twin.created = staged.created
                and twin.event = staged.event
                and twin.org_id = staged.org_id
                and twin.user_id is not distinct from staged.user_id
                and twin.project_id is not distinct from staged.project_id
                and cast(twin.content as text) is not distinct from cast(staged.content as text)
        )
    )
),

rules as (
    select * from {{ ref('snyk_alert_rules') }}
),

listed as (
    -- Every event of each rule's list, with the rule's severity and whether it has a block.
    select
        rules.rule_id,
        rules.severity as rule_severity,
        rules.logic is not null and rules.logic <> '' as has_logic,
        events.*
    from events
    inner join rules
        on position(' ' || events.event || ' ' in ' ' || rules.events || ' ') > 0
),

event_list_rules as (
    select rule_id, event_id, rule_severity as severity, {{ by_actor_and_event }} as dedup_on
    from listed
    where not has_logic
),

-- Panther's rules ---------------------------------------------------------------------------

-- Snyk.OU.Change: a deletion or removal is HIGH, an edit MEDIUM.
ou_change as (
    select
        rule_id,
        event_id,
        case
            when event like '%.delete' or event like '%.remove' then 'HIGH'
            when event like '%.edit' then 'MEDIUM'
            else rule_severity
        end as severity,
        {{ by_actor_and_event }} as dedup_on
    from listed
    where rule_id = 'Snyk.OU.Change'
),

-- Snyk.Project.Settings: a fix PR opened by hand is INFO; a PR check that found no new Code
-- Analysis issues is no alert.
project_settings as (
    select
        rule_id,
        event_id,
        case when event = 'org.project.fix_pr.manual_open' then 'INFO' else rule_severity end
            as severity,
        {{ by_actor_and_event }} as dedup_on
    from listed
    where rule_id = 'Snyk.Project.Settings'
        and (content -> 'after' ->> 'description') is distinct from 'No new Code Analysis issues found'
),

-- Snyk.Role.Change: ADMIN given is CRITICAL.
role_change as (
    select
        rule_id,
        event_id,
        case when role_after = 'ADMIN' then 'CRITICAL' else rule_severity end as severity,
        {{ by_actor_and_event }} as dedup_on
    from listed
    where rule_id = 'Snyk.Role.Change'
),

-- Snyk.ServiceAccount.Change: created or deleted is HIGH, and CRITICAL with the ADMIN role.
service_account_change as (
    select
        rule_id,
        event_id,
        case
            when (event like '%.service_account.create' or event like '%.service_account.delete')
                and {{ snyk_content_role('listed') }} = 'ADMIN' then 'CRITICAL'
            when event like '%.service_account.create' or event like '%.service_account.delete'
                then 'HIGH'
            else rule_severity
        end as severity,
        {{ by_actor_and_event }} as dedup_on
    from listed
    where rule_id = 'Snyk.ServiceAccount.Change'
),

-- Snyk.System.ExternalAccess: HIGH when access requests are turned on; grouped without the
-- event type.
external_access as (
    select
        rule_id,
        event_id,
        case when content -> 'after' ->> 'isEnabled' = 'true' then 'HIGH' else rule_severity end
            as severity,
        coalesce(user_id, '-') || ':' || coalesce(org_id, '-') || ':' || coalesce(group_id, '-')
            as dedup_on
    from listed
    where rule_id = 'Snyk.System.ExternalAccess'
),

-- Snyk.System.PolicySetting: alerts of one policy (content.publicId) group together.
policy_setting as (
    select
        rule_id,
        event_id,
        rule_severity as severity,
        coalesce(user_id, '-') || ':' || coalesce(org_id, '-') || ':' || coalesce(group_id, '-')
            || ':' || coalesce(content ->> 'publicId', '-') as dedup_on
    from listed
    where rule_id = 'Snyk.System.PolicySetting'
),

-- Snyk.User.Management: no alert for a member who adds themselves (a user joining through SSO is
-- logged as their own actor: user_id = content.userPublicId); ADMIN given is CRITICAL.
user_management as (
    select
        rule_id,
        event_id,
        case when role_after = 'ADMIN' then 'CRITICAL' else rule_severity end as severity,
        {{ by_actor_and_event }} as dedup_on
    from listed
    where rule_id = 'Snyk.User.Management'
        and not (event like '%.user.add' and coalesce(subject_user_id = user_id, false))
),

-- This project's rules ----------------------------------------------------------------------

-- TapSnyk.Member.ActsAfterRemoval: every event of a user in an org (group) after they were
-- removed from it or left it, unless they were added to it again in between.
removals as (
    select
        rule_id,
        rule_severity,
        created,
        coalesce(subject_user_id, user_id) as removed_user_id,  -- org.user.leave: the actor
        case when event like 'group.%' then 'group' else 'org' end as scope,
        case when event like 'group.%' then group_id else org_id end as scope_id
    from listed
    where rule_id = 'TapSnyk.Member.ActsAfterRemoval'
),

readditions as (
    select
        created,
        coalesce(subject_user_id, user_id) as user_id,
        case when event like 'group.%' then 'group' else 'org' end as scope,
        case when event like 'group.%' then group_id else org_id end as scope_id
    from events
    where event in (
        'org.user.add', 'org.user.invite.accept', 'org.user.invite_link.accept',
        'org.user.provision.accept', 'group.user.add', 'group.user.provision.accept'
    )
),

acts_after_removal as (
    select distinct
        removals.rule_id,
        later.event_id,
        removals.rule_severity as severity,
        removals.removed_user_id as dedup_on
    from removals
    inner join events as later
        on later.user_id = removals.removed_user_id
        and later.created > removals.created
        and case removals.scope when 'org' then later.org_id else later.group_id end
            = removals.scope_id
    where not exists (
        select 1
        from readditions
        where readditions.user_id = removals.removed_user_id
            and readditions.scope = removals.scope
            and readditions.scope_id = removals.scope_id
            and readditions.created > removals.created
            and readditions.created <= later.created
    )
),

-- TapSnyk.Destructive.Burst: an actor's destructive event with at least snyk_burst_min_events
-- of them (itself included) in the snyk_burst_window_minutes up to it.
destructive as (
    select rule_id, rule_severity, event_id, created, user_id
    from listed
    where rule_id = 'TapSnyk.Destructive.Burst' and user_id is not null
),

destructive_burst as (
    select
        destructive.rule_id,
        destructive.event_id,
        destructive.rule_severity as severity,
        destructive.user_id as dedup_on
    from destructive
    inner join destructive as window_event
        on window_event.user_id = destructive.user_id
        and window_event.created <= destructive.created
        and window_event.created
            > destructive.created - interval '{{ var("snyk_burst_window_minutes") }} minutes'
    group by destructive.rule_id, destructive.event_id, destructive.rule_severity, destructive.user_id
    having count(*) >= {{ var("snyk_burst_min_events") }}
),

-- TapSnyk.ServiceAccount.ShortLived: the deletion of a service account created less than
-- snyk_short_lived_hours before.
service_account_lifecycle as (
    select
        rule_id,
        rule_severity,
        event_id,
        created,
        case when event like '%.create' then 'create' else 'delete' end as step,
        {{ snyk_service_account_id('listed') }} as service_account_id
    from listed
    where rule_id = 'TapSnyk.ServiceAccount.ShortLived'
),

short_lived_service_account as (
    select distinct
        deletion.rule_id,
        deletion.event_id,
        deletion.rule_severity as severity,
        deletion.service_account_id as dedup_on
    from service_account_lifecycle as deletion
    inner join service_account_lifecycle as creation
        on creation.service_account_id = deletion.service_account_id
        and creation.step = 'create'
        and creation.created <= deletion.created
        and deletion.created
            < creation.created + interval '{{ var("snyk_short_lived_hours") }} hours'
    where deletion.step = 'delete'
),

-- TapSnyk.Ignore.Unbounded: an ignore without an expiry or for every path of the project (HIGH
-- when both).
ignores as (
    select
        rule_id,
        rule_severity,
        event_id,
        project_id,
        coalesce(content ->> 'expires', '') = '' as never_expires,
        coalesce(content ->> 'ignorePath' = '*', false) as whole_project
    from listed
    where rule_id = 'TapSnyk.Ignore.Unbounded'
),

unbounded_ignore as (
    select
        rule_id,
        event_id,
        case when never_expires and whole_project then 'HIGH' else rule_severity end as severity,
        coalesce(project_id, '-') as dedup_on
    from ignores
    where never_expires or whole_project
),

matches as (
    select * from event_list_rules
    union all select * from ou_change
    union all select * from project_settings
    union all select * from role_change
    union all select * from service_account_change
    union all select * from external_access
    union all select * from policy_setting
    union all select * from user_management
    union all select * from acts_after_removal
    union all select * from destructive_burst
    union all select * from short_lived_service_account
    union all select * from unbounded_ignore
)

select
    rule_id,
    event_id,
    severity,
    rule_id || ':' || dedup_on as dedup_key
from matches
