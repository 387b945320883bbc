-- Per UTC day, per user, per org (or, for group-level events, per group): how many events and
-- how many distinct event types. Events without a user (system events) are left out.
-- activity_key is the grain as one column: md5 of day, user, org and group ('-' for none),
-- the same recipe as dbt_utils' generate_surrogate_key.
with events as (
    select
        (created at time zone 'UTC')::date as activity_date,
        user_id,
        user_name,
        user_email,
        org_id,
        org_name,
        group_id,
        event,
        created
    from {{ ref('stg_snyk__audit_events') }}
    where user_id is not null
)

select
    md5(
        activity_date::text || '-' || user_id || '-' || coalesce(org_id, '-') || '-'
        || coalesce(group_id, '-')
    ) as activity_key,
    activity_date,
    user_id,
    user_name,
    user_email,
    org_id,
    org_name,
    group_id,
    count(*) as events,
    count(distinct event) as distinct_event_types,
    array_agg(distinct event order by event) as event_types,
    min(created) as first_event_at,
    max(created) as last_event_at
from events
group by activity_date, user_id, user_name, user_email, org_id, org_name, group_id
