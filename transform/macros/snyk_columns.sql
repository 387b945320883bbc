{#- Columns the marts share, written once. -#}

{#- Who did it: the staged event's user, as the actor of the change. -#}
{% macro snyk_actor_columns(relation) -%}
    {{ relation }}.user_id as actor_user_id,
    {{ relation }}.user_name as actor_name,
    {{ relation }}.user_email as actor_email,
    {{ relation }}.user_role as actor_role,
    {{ relation }}.user_has_left as actor_has_left
{%- endmacro %}

{#- A role named in an event's content: a string, or an object with a `role`. -#}
{% macro snyk_content_role(relation) -%}
    case {{ snyk_json_kind(relation ~ ".content -> 'role'") }}
        when 'string' then {{ relation }}.content ->> 'role'
        when 'object' then {{ relation }}.content -> 'role' ->> 'role'
    end
{%- endmacro %}

{#- Whose membership or role an event changes: content.userPublicId (else content.userId). -#}
{% macro snyk_subject_user_id(relation) -%}
    coalesce({{ relation }}.content ->> 'userPublicId', {{ relation }}.content ->> 'userId')
{%- endmacro %}

{#- The role before a change: content.before.role (groups) or content.beforeRoleName (orgs). -#}
{% macro snyk_role_before(relation) -%}
    coalesce(
        nullif({{ relation }}.content -> 'before' ->> 'role', ''), {{ relation }}.content ->> 'beforeRoleName'
    )
{%- endmacro %}

{#- The role after a change: content.after.role (groups) or content.afterRoleName (orgs). Not the
    role an addition names (content.role: snyk_content_role), as Panther's rules read it. -#}
{% macro snyk_role_after(relation) -%}
    coalesce(
        nullif({{ relation }}.content -> 'after' ->> 'role', ''), {{ relation }}.content ->> 'afterRoleName'
    )
{%- endmacro %}

{#- The service account an event is about: content.serviceAccountPublicId (else serviceAccountId). -#}
{% macro snyk_service_account_id(relation) -%}
    coalesce(
        {{ relation }}.content ->> 'serviceAccountPublicId', {{ relation }}.content ->> 'serviceAccountId'
    )
{%- endmacro %}
