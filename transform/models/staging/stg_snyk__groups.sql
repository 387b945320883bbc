-- One row per group: every group a loaded group membership or organization names, with its name
-- as the group's memberships give it (null for a group known only from its orgs: the tap reads
-- group names from the memberships of the configured groups).
with named as (
    select
        group_id,
        group_name,
        -- One name per group, the same on every build: current memberships first, then the newest.
        row_number() over (
            partition by group_id
            order by _sdc_deleted_at nulls first, _sdc_extracted_at desc nulls last, group_name
        ) as rank_of_name
    from {{ snyk_source('group_memberships') }} as group_memberships
    where group_id is not null and group_name is not null
),

groups as (
    select group_id from {{ snyk_source('group_memberships') }} as group_memberships
    union
    select group_id from {{ snyk_source('organizations') }} as organizations
)

select
    groups.group_id,
    named.group_name
from groups
left join named
    on named.group_id = groups.group_id
    and named.rank_of_name = 1
where groups.group_id is not null
