-- One row per user (or service account) seen in any org or group membership. A user belongs to
-- several orgs and groups; name and email come from one current membership, picked the same
-- way on every build: memberships not deleted first, then the newest, then by membership id.
with ranked as (
    select
        memberships.*,
        row_number() over (
            partition by user_id
            order by is_deleted, created_at desc nulls last, membership_id
        ) as rank_for_user
    from {{ ref('stg_snyk__memberships') }} as memberships
),

counts as (
    select
        user_id,
        count(*) filter (where scope = 'org' and not is_deleted) as org_count,
        count(*) filter (where scope = 'group' and not is_deleted) as group_count,
        bool_and(is_deleted) as has_left
    from {{ ref('stg_snyk__memberships') }}
    group by user_id
)

select
    ranked.user_id,
    ranked.user_name,
    ranked.user_username,
    ranked.user_email,
    ranked.user_login_method,
    counts.org_count,
    counts.group_count,
    counts.has_left
from ranked
inner join counts on counts.user_id = ranked.user_id
where ranked.rank_for_user = 1
