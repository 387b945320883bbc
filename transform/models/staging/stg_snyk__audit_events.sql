-- One row per audit event (event_id) of every org and group, with names beside the ids: who
-- (the acting user, their role where the event happened), where (org, group, project), what
-- (event, family, scope) and when (created, timestamptz).
-- Every lookup is joined LEFT on a key that is unique in its model, so an event whose user,
-- org or project is unknown (left, deleted, not loaded) keeps its row, with null names.
with unioned as (
    select 'org' as source, org_events.*
    from {{ snyk_source('org_audit_logs') }} as org_events
    union all
    select 'group' as source, group_events.*
    from {{ snyk_source('group_audit_logs') }} as group_events
),

events as (
    -- One row per event_id. An org event read through both the org's log and its group's log
    -- has two ids (the group's copy carries the group_id the tap fills in), so both stay, told
    -- apart by `source`; should two copies ever share an id, the org's is kept.
    select
        unioned.*,
        row_number() over (
            partition by event_id order by case source when 'org' then 0 else 1 end
        ) as rank_of_copy
    from unioned
    where event_id is not null
)

select
    events.event_id,
    events.source,
    events.created at time zone 'UTC' as created,
    events.event,
    -- org.user.role.edit -> family org.user.role, scope org; api.access -> api, api
    regexp_replace(events.event, '\.[^.]*$', '') as event_family,
    split_part(events.event, '.', 1) as event_scope,

    events.user_id,
    users.user_name,
    users.user_username,
    users.user_email,
    -- Every loaded membership of the actor has ended: removed, yet still acting if the event is
    -- newer than the removal.
    users.has_left as user_has_left,
    -- The actor's role in the event's org, else in its group: the membership's role as last
    -- loaded (also for a member who has since left); null where no membership is known.
    coalesce(org_members.role_name, group_members.role_name) as user_role,

    events.org_id,
    organizations.org_name,
    organizations.org_slug,
    -- Org events may come without their group: it is the org's.
    coalesce(events.group_id, organizations.group_id) as group_id,
    groups.group_name,

    events.project_id,
    projects.project_name,
    projects.project_type,

    events.content,
    events._sdc_extracted_at at time zone 'UTC' as extracted_at
from events
left join {{ ref('stg_snyk__users') }} as users
    on users.user_id = events.user_id
left join {{ ref('stg_snyk__organizations') }} as organizations
    on organizations.org_id = events.org_id
left join {{ ref('stg_snyk__groups') }} as groups
    on groups.group_id = coalesce(events.group_id, organizations.group_id)
left join {{ ref('stg_snyk__projects') }} as projects
    on projects.project_id = events.project_id
left join {{ ref('stg_snyk__memberships') }} as org_members
    on org_members.scope = 'org'
    and org_members.scope_id = events.org_id
    and org_members.user_id = events.user_id
left join {{ ref('stg_snyk__memberships') }} as group_members
    on group_members.scope = 'group'
    and group_members.scope_id = coalesce(events.group_id, organizations.group_id)
    and group_members.user_id = events.user_id
where events.rank_of_copy = 1
