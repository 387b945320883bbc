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
