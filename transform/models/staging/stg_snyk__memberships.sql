-- One row per member of an organization or a group: (scope, scope_id, user_id), with the role
-- held there. A membership that ended stays as last seen, with is_deleted true (set from the
-- loader's _sdc_deleted_at: target-postgres, on the tap's ACTIVATE_VERSION; never in DuckDB).
{%- set member_columns -%}
    id, user_id, user_name, user_username, user_email, user_login_method, role_id, role_name,
    created_at, _sdc_deleted_at
{%- endset %}

with memberships as (
    select 'org' as scope, org_id as scope_id, {{ member_columns }}
    from {{ snyk_source('org_memberships') }} as org_memberships
    union all
    select 'group' as scope, group_id as scope_id, {{ member_columns }}
    from {{ snyk_source('group_memberships') }} as group_memberships
),

ranked as (
    select
        memberships.*,
        -- A user has one membership per org or group; should two rows say otherwise, one wins,
        -- the same one on every build.
        row_number() over (
            partition by scope, scope_id, user_id
            order by _sdc_deleted_at nulls first, created_at desc nulls last, id
        ) as rank_in_scope
    from memberships
    where user_id is not null and scope_id is not null
)

select
    scope || ':' || scope_id || ':' || user_id as membership_key,
    id as membership_id,
    scope,
    scope_id,
    case when scope = 'org' then scope_id end as org_id,
    case when scope = 'group' then scope_id end as group_id,
    user_id,
    user_name,
    user_username,
    user_email,
    user_login_method,
    role_id,
    role_name,
    created_at at time zone 'UTC' as created_at,
    _sdc_deleted_at is not null as is_deleted
from ranked
where rank_in_scope = 1
