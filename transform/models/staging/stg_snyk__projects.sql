-- One row per project. A project deleted in Snyk stays, so that old events keep its name;
-- is_deleted says it is gone (target-postgres marks it on the tap's ACTIVATE_VERSION; in DuckDB,
-- whose loader ignores that message, it stays false).
with ranked as (
    select
        projects.*,
        row_number() over (
            partition by id
            order by _sdc_deleted_at nulls first, _sdc_extracted_at desc nulls last
        ) as rank_in_project
    from {{ snyk_source('projects') }} as projects
    where id is not null
)

select
    id as project_id,
    org_id,
    name as project_name,
    type as project_type,
    origin as project_origin,
    status as project_status,
    target_id,
    target_reference,
    target_file,
    target_runtime,
    created at time zone 'UTC' as created_at,
    business_criticality,
    environment,
    lifecycle,
    tags,
    importer_id,
    _sdc_deleted_at is not null as is_deleted
from ranked
where rank_in_project = 1
