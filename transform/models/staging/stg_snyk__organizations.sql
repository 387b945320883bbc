-- One row per organization. One removed in Snyk stays as last seen, so that old events keep
-- its name; is_deleted says it is gone (target-postgres; false in DuckDB, see the projects).
with ranked as (
    select
        organizations.*,
        row_number() over (
            partition by id
            order by _sdc_deleted_at nulls first, _sdc_extracted_at desc nulls last, updated_at desc nulls last
        ) as rank_in_org
    from {{ snyk_source('organizations') }} as organizations
    where id is not null
)

select
    id as org_id,
    name as org_name,
    slug as org_slug,
    group_id,
    is_personal,
    access_requests_enabled,
    created_at at time zone 'UTC' as created_at,
    updated_at at time zone 'UTC' as updated_at,
    _sdc_deleted_at is not null as is_deleted
from ranked
where rank_in_org = 1
