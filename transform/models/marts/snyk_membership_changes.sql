-- Who joined, left, was invited, or changed role, in which org or group, and who did it:
-- every *.user.*, *.role.* and membership event, and SSO membership syncs.
-- The subject (the user changed) and the roles before and after come from the event's content,
-- as Snyk writes it: userPublicId; before.role / after.role (groups) or beforeRoleName /
-- afterRoleName (orgs); role, a name or a role object, on additions.
with changes as (
    select
        events.*,
        case
            when {{ snyk_matches('events.event', '(^|[.])roles?([.]|$)') }} then 'role'
            when {{ snyk_matches('events.event', '(^|[.])sso([.]|$)') }} then 'sso_sync'
            else 'membership'
        end as change_kind,
        {{ snyk_subject_user_id('events') }} as subject_user_id,
        {{ snyk_content_role('events') }} as content_role
    from {{ ref('stg_snyk__audit_events') }} as events
    where {{ snyk_matches('events.event', '(^|[.])(users?|roles?|members?|memberships?|invites?)([.]|$)') }}
        or {{ snyk_matches('events.event', '(^|[.])sso[.](.*[.])?sync$') }}
)

select
    changes.event_id,
    changes.created,
    changes.event,
    changes.change_kind,

    {{ snyk_actor_columns('changes') }},

    changes.subject_user_id,
    coalesce(subjects.user_name, changes.content ->> 'displayName', changes.content ->> 'name')
        as subject_name,
    coalesce(subjects.user_email, changes.content ->> 'email') as subject_email,
    subjects.has_left as subject_has_left,
    {{ snyk_role_before('changes') }} as role_before,
    coalesce({{ snyk_role_after('changes') }}, changes.content_role) as role_after,

    changes.org_id,
    changes.org_name,
    changes.group_id,
    changes.source,
    changes.content
from changes
left join {{ ref('stg_snyk__users') }} as subjects
    on subjects.user_id = changes.subject_user_id
