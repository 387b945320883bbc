{#-
  Building JSON documents the same way in PostgreSQL and DuckDB, for the OCSF events.

  snyk_json_object({'key': sql, ...}) is a JSON object of the keys whose value is not null, in
  the order given; null when every value is null, so that an object nested in another vanishes
  with it. OCSF has no null values: an attribute that is unknown is absent. Values may be text,
  numbers, booleans or JSON documents (nested objects, `content`); a string literal needs its
  type (`'Snyk'::text`), as PostgreSQL cannot tell the type of a bare literal.
-#}
{% macro snyk_json_object(fields) -%}
    cast('{' || nullif(concat_ws(','
    {%- for key, value in fields.items() %},
        case when ({{ value }}) is not null then '{{ tojson(key) }}:' || cast({{ snyk_to_json(value) }} as text) end
    {%- endfor %}
    ), '') || '}' as {{ snyk_json_type() }})
{%- endmacro %}

{#- A JSON array of one value, or null when the value is null. -#}
{% macro snyk_json_array_of(value) -%}
    cast('[' || cast({{ snyk_to_json(value) }} as text) || ']' as {{ snyk_json_type() }})
{%- endmacro %}

{#- A value as JSON: a text becomes a JSON string, a JSON document stays as it is. -#}
{% macro snyk_to_json(value) -%}
    {{ return(adapter.dispatch('snyk_to_json')(value)) }}
{%- endmacro %}

{% macro default__snyk_to_json(value) -%}
    to_jsonb({{ value }})
{%- endmacro %}

{% macro duckdb__snyk_to_json(value) -%}
    to_json({{ value }})
{%- endmacro %}
