{#-
  The few places where PostgreSQL and DuckDB spell the same thing differently, one macro each,
  dispatched on the adapter (`default__` is PostgreSQL's spelling, `duckdb__` DuckDB's).
  Everything else in the models is SQL that both run alike.
-#}

{#- Whether `expr` matches the regular expression `pattern` anywhere (DuckDB's `~` must match
    the whole string, PostgreSQL's anywhere). -#}
{% macro snyk_matches(expr, pattern) -%}
    {{ return(adapter.dispatch('snyk_matches')(expr, pattern)) }}
{%- endmacro %}

{% macro default__snyk_matches(expr, pattern) -%}
    {{ expr }} ~ '{{ pattern }}'
{%- endmacro %}

{% macro duckdb__snyk_matches(expr, pattern) -%}
    regexp_matches({{ expr }}, '{{ pattern }}')
{%- endmacro %}

{#- The type of JSON documents: jsonb in PostgreSQL, json in DuckDB. -#}
{% macro snyk_json_type() -%}
    {{ return(adapter.dispatch('snyk_json_type')()) }}
{%- endmacro %}

{% macro default__snyk_json_type() -%}
    jsonb
{%- endmacro %}

{% macro duckdb__snyk_json_type() -%}
    json
{%- endmacro %}

{#- A loaded column as a JSON document. target-postgres stores an array of strings as text[] and
    an array of objects as jsonb[], which do not cast to jsonb; target-duckdb stores json. -#}
{% macro snyk_as_json(column) -%}
    {{ return(adapter.dispatch('snyk_as_json')(column)) }}
{%- endmacro %}

{% macro default__snyk_as_json(column) -%}
    to_jsonb({{ column }})
{%- endmacro %}

{% macro duckdb__snyk_as_json(column) -%}
    {{ column }}::json
{%- endmacro %}

{#- The JSON type of a value, in lower case: 'string', 'object', ... -#}
{% macro snyk_json_kind(value) -%}
    {{ return(adapter.dispatch('snyk_json_kind')(value)) }}
{%- endmacro %}

{% macro default__snyk_json_kind(value) -%}
    jsonb_typeof({{ value }})
{%- endmacro %}

{% macro duckdb__snyk_json_kind(value) -%}
    case json_type({{ value }}) when 'VARCHAR' then 'string' else lower(json_type({{ value }})) end
{%- endmacro %}

{#- Milliseconds since 1970-01-01 UTC of a timestamptz, as a bigint (OCSF's `time`). -#}
{% macro snyk_epoch_ms(expr) -%}
    {{ return(adapter.dispatch('snyk_epoch_ms')(expr)) }}
{%- endmacro %}

{% macro default__snyk_epoch_ms(expr) -%}
    floor(extract(epoch from {{ expr }}) * 1000)::bigint
{%- endmacro %}

{% macro duckdb__snyk_epoch_ms(expr) -%}
    epoch_ms({{ expr }})
{%- endmacro %}
