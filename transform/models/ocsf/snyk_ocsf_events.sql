{#-
  Every audit event (stg_snyk__audit_events) as one OCSF event of release 1.8.0, in the class that
  fits it; `ocsf` holds the event as a JSON document, the other columns repeat a few of its
  attributes for filtering. Written for the schema of that release: its required attributes are
  always there, and what OCSF has no place for is kept in `unmapped`, with the event's `content`
  as Snyk sent it (an event without content has none: target-postgres stores that as JSON null,
  target-duckdb as SQL null). tests/test_ocsf.py validates every row against OCSF's JSON schema
  of its class.

  | class (class_uid)                  | events                                                   |
  |------------------------------------|----------------------------------------------------------|
  | User Access Management (3005)      | *.user.role.edit naming the member and the role given    |
  | Group Management (3006)            | members added, removed, invited, provisioned; SSO syncs  |
  | Account Change (3001)              | *.service_account.* naming the service account           |
  | API Activity (6003)                | api.access                                               |
  | Entity Management (3004)           | everything else: orgs, groups, projects, policies, ...   |
-#}
{%- set ocsf_version = '1.8.0' -%}
{%- set membership_events -%}
    ^(org|group)[.](user[.](add|remove|leave|invite|invite[.](accept|revoke)|invite_link[.](accept|create|revoke)|provision[.](accept|create|delete))|sso[.]membership[.]sync)$
{%- endset -%}
{#- Stricter than OCSF's email_t pattern, so that what passes here passes there. -#}
{%- set email_pattern = '^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+[.][A-Za-z0-9.-]+$' -%}
{%- set ipv4_pattern = '^((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])[.]){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])$' -%}

with events as (
    select
        staged.*,
        -- org.project.ignore.create: scope org, verb create, object project.ignore; org.edit: org.
        regexp_replace(staged.event, '^.*[.]', '') as verb,
        case
            when staged.event_family = staged.event_scope then staged.event_scope
            else substr(staged.event_family, length(staged.event_scope) + 2)
        end as object_kind,
        {{ snyk_subject_user_id('staged') }} as subject_user_id,
        {{ snyk_role_after('staged') }} as role_after,
        {{ snyk_service_account_id('staged') }} as service_account_id,
        -- Where a membership event happened: the group for group.*, else the org.
        case when staged.event_scope = 'group' then staged.group_id else staged.org_id end
            as membership_scope_id,
        case when staged.event_scope = 'group' then staged.group_name else staged.org_name end
            as membership_scope_name
    from {{ ref('stg_snyk__audit_events') }} as staged
),

classified as (
    select
        events.*,
        case
            when events.event = 'api.access' then 6003
            when events.event like '%.user.role.edit'
                and events.subject_user_id is not null and events.role_after is not null then 3005
            when {{ snyk_matches('events.event', membership_events) }}
                and events.membership_scope_id is not null then 3006
            when events.object_kind like 'service_account%'
                and events.service_account_id is not null then 3001
            else 3004
        end as class_uid,
        upper(events.content ->> 'method') as http_method,
        case when {{ snyk_matches("events.content ->> 'status'", '^[1-5][0-9]{2}$') }}
            then cast(events.content ->> 'status' as integer)
        end as http_status
    from events
),

activities as (
    select
        classified.*,
        case classified.class_uid
            when 6003 then
                case
                    when classified.http_method in ('GET', 'HEAD', 'OPTIONS') then 2
                    when classified.http_method = 'POST' then 1
                    when classified.http_method in ('PUT', 'PATCH') then 3
                    when classified.http_method = 'DELETE' then 4
                    else 0
                end
            when 3005 then 1
            when 3006 then
                case
                    when classified.verb in ('add', 'accept') then 3
                    when classified.verb in ('remove', 'leave') then 4
                    else 99
                end
            when 3001 then
                case classified.verb when 'create' then 1 when 'delete' then 6 else 99 end
            else
                case
                    when classified.verb in ('create', 'add') then 1
                    when classified.verb in ('read', 'list', 'export') then 2
                    when classified.verb in ('edit', 'update', 'upsert') then 3
                    when classified.verb in ('delete', 'remove') then 4
                    when classified.verb = 'monitor' then 8
                    when classified.verb = 'stop_monitor' then 9
                    else 99
                end
        end as activity_id
    from classified
),

mapped as (
    select
        activities.*,
        case activities.class_uid
            when 3001 then 'Account Change'
            when 3004 then 'Entity Management'
            when 3005 then 'User Access Management'
            when 3006 then 'Group Management'
            when 6003 then 'API Activity'
        end as class_name,
        case when activities.class_uid = 6003 then 6 else 3 end as category_uid,
        case when activities.class_uid = 6003 then 'Application Activity'
            else 'Identity & Access Management'
        end as category_name,
        case
            when activities.activity_id = 99 then activities.verb
            when activities.activity_id = 0 then 'Unknown'
            when activities.class_uid = 3005 then 'Assign Privileges'
            when activities.class_uid = 3006 then
                case activities.activity_id when 3 then 'Add User' else 'Remove User' end
            else
                case activities.activity_id
                    when 1 then 'Create'
                    when 2 then 'Read'
                    when 3 then 'Update'
                    when 4 then 'Delete'
                    when 6 then 'Delete'
                    when 8 then 'Enable'
                    when 9 then 'Disable'
                end
        end as activity_name,
        -- Entity Management: what the event acts on, and its id and name where they are known.
        case
            when activities.object_kind = 'org' then 4
            when activities.object_kind = 'group' then 3
            when activities.object_kind like '%polic%' then 5
            when activities.object_kind = 'user' then 2
            else 99
        end as entity_type_id,
        case
            when activities.object_kind like 'project%' then activities.project_id
            when activities.object_kind = 'org'
                then coalesce(activities.org_id, activities.content ->> 'newOrgPublicId')
            when activities.object_kind = 'group' then activities.group_id
            when activities.object_kind like '%polic%' then activities.content ->> 'publicId'
            when activities.object_kind like 'integration%' then
                coalesce(
                    activities.content ->> 'integrationPublicId', activities.content ->> 'integrationId'
                )
            when activities.object_kind like 'service_account%' then activities.service_account_id
            when activities.object_kind = 'user' then activities.subject_user_id
            else coalesce(activities.content ->> 'publicId', activities.content ->> 'id')
        end as entity_uid,
        case
            when activities.object_kind like 'project%' then activities.project_name
            when activities.object_kind = 'org' then activities.org_name
            when activities.object_kind = 'group' then activities.group_name
            when activities.object_kind like '%polic%' then activities.content -> 'after' ->> 'name'
        end as entity_name,
        coalesce(subjects.user_name, activities.content ->> 'displayName', activities.content ->> 'name')
            as subject_name,
        coalesce(subjects.user_email, activities.content ->> 'email') as subject_email,
        coalesce(
            activities.content ->> 'ip', activities.content ->> 'ipAddress',
            activities.content ->> 'sourceIp'
        ) as client_ip
    from activities
    left join {{ ref('stg_snyk__users') }} as subjects
        on subjects.user_id = activities.subject_user_id
),

documents as (
    select
        mapped.*,
        {{ snyk_json_object({
            'uid': 'mapped.user_id',
            'name': 'mapped.user_name',
            'email_addr': "case when " ~ snyk_matches('mapped.user_email', email_pattern) ~ " then mapped.user_email end",
        }) }} as actor_user,
        {{ snyk_json_object({
            'uid': 'mapped.subject_user_id',
            'name': 'mapped.subject_name',
            'email_addr': "case when " ~ snyk_matches('mapped.subject_email', email_pattern) ~ " then mapped.subject_email end",
        }) }} as subject_user,
        -- Where unknown, OCSF still needs the client endpoint named: its user agent, or 'unknown'.
        case when {{ snyk_matches('mapped.client_ip', ipv4_pattern) }}
                or {{ snyk_matches('mapped.client_ip', '^[0-9A-Fa-f:]*:[0-9A-Fa-f:]*$') }}
            then {{ snyk_json_object({'ip': 'mapped.client_ip'}) }}
            else {{ snyk_json_object({
                'name': "coalesce(mapped.content ->> 'userAgent', 'unknown'::text)",
            }) }}
        end as src_endpoint
    from mapped
)

select
    documents.event_id,
    documents.created,
    documents.class_uid,
    documents.class_name,
    documents.activity_id,
    documents.class_uid * 100 + documents.activity_id as type_uid,
    {{ snyk_json_object({
        'class_uid': 'documents.class_uid',
        'class_name': 'documents.class_name',
        'category_uid': 'documents.category_uid',
        'category_name': 'documents.category_name',
        'activity_id': 'documents.activity_id',
        'activity_name': 'documents.activity_name',
        'type_uid': 'documents.class_uid * 100 + documents.activity_id',
        'type_name': "documents.class_name || ': ' || case documents.activity_id when 99 then 'Other' else documents.activity_name end",
        'time': snyk_epoch_ms('documents.created'),
        'severity_id': '1',
        'severity': "'Informational'::text",
        'message': 'documents.event',
        'metadata': snyk_json_object({
            'version': "'" ~ ocsf_version ~ "'::text",
            'product': snyk_json_object({
                'name': "'Snyk'::text",
                'vendor_name': "'Snyk'::text",
                'feature': snyk_json_object({'name': "'Audit logs'::text"}),
            }),
            'uid': 'documents.event_id',
            'event_code': 'documents.event',
            'log_name': "documents.source || '_audit_logs'",
            'tenant_uid': 'documents.group_id',
        }),
        'actor': "case when documents.user_id is not null then "
            ~ snyk_json_object({'user': 'documents.actor_user'})
            ~ " when documents.class_uid = 6003 then "
            ~ snyk_json_object({'app_name': "'Snyk'::text"}) ~ " end",
        'user': "case documents.class_uid"
            ~ " when 3001 then " ~ snyk_json_object({
                'uid': 'documents.service_account_id',
                'name': "documents.content ->> 'name'",
                'type': "'Service Account'::text",
                'type_id': '4',
            })
            ~ " when 3005 then documents.subject_user"
            ~ " when 3006 then documents.subject_user end",
        'privileges': "case when documents.class_uid = 3005 then "
            ~ snyk_json_array_of('documents.role_after') ~ " end",
        'group': "case when documents.class_uid = 3006 then " ~ snyk_json_object({
                'uid': 'documents.membership_scope_id',
                'name': 'documents.membership_scope_name',
                'type': "case documents.event_scope when 'group' then 'Snyk group' else 'Snyk organization' end",
            }) ~ " end",
        'entity': "case when documents.class_uid = 3004 then " ~ snyk_json_object({
                'uid': 'documents.entity_uid',
                'name': 'coalesce(documents.entity_name, case when documents.entity_uid is null then documents.object_kind end)',
                'type': 'documents.object_kind',
                'type_id': 'documents.entity_type_id',
            }) ~ " end",
        'api': "case when documents.class_uid = 6003 then " ~ snyk_json_object({
                'operation': "coalesce(documents.http_method || ' ' || regexp_replace(documents.content ->> 'url', '[?].*$', ''), documents.event)",
            }) ~ " end",
        'http_request': "case when documents.class_uid = 6003 then " ~ snyk_json_object({
                'http_method': "case when documents.http_method in ('OPTIONS', 'GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'TRACE', 'CONNECT', 'PATCH') then documents.http_method end",
                'user_agent': "documents.content ->> 'userAgent'",
            }) ~ " end",
        'http_response': "case when documents.class_uid = 6003 then "
            ~ snyk_json_object({'code': 'documents.http_status'}) ~ " end",
        'status_id': "case when documents.http_status >= 400 then 2 when documents.http_status is not null then 1 end",
        'src_endpoint': "case when documents.class_uid = 6003 then documents.src_endpoint end",
        'unmapped': snyk_json_object({
            'org_id': 'documents.org_id',
            'org_name': 'documents.org_name',
            'group_id': 'documents.group_id',
            'group_name': 'documents.group_name',
            'project_id': 'documents.project_id',
            'project_name': 'documents.project_name',
            'content': "case when " ~ snyk_json_kind('documents.content') ~ " <> 'null' then documents.content end",
        }),
    }) }} as ocsf
from documents
