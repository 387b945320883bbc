{#
  snyk_source(table_name): one of the loader's tables, as a subquery with exactly the columns that
  models/staging/_snyk__sources.yml declares for it, each cast to its declared data_type.
  `json` columns become the adapter's JSON documents (jsonb in PostgreSQL, json in DuckDB) through
  snyk_as_json(), as arrays stored as text[] or jsonb[] do not cast (macros/snyk_portable.sql).

  Why not plain source(): the loader creates a table only for a stream it received, and only
  with the columns of the tap version that ran. A project that reads only org ids has no
  group_audit_logs; an older tap has no lookup tables. Here a missing column reads as null and a
  missing table as an empty set, so every model builds on whatever subset was loaded.

  Use it like a table: `from {{ snyk_source('projects') }} as projects`.

  Whether the table exists is asked of the database, not of adapter.get_relation(): dbt fills
  its cache of a schema one relation at a time, so a model compiled on another thread meanwhile
  (dbt-postgres runs 4) could find the schema cached without the table and read nothing.
#}
{% macro snyk_source(table_name) %}
  {%- set relation = source('snyk', table_name) -%}
  {%- if not execute -%}
    {#- Parsing: source() above records the lineage; nothing is queried. -#}
    {{- relation -}}
  {%- else -%}
    {%- set declared = (graph.sources.values()
        | selectattr('source_name', 'equalto', 'snyk')
        | selectattr('name', 'equalto', table_name)
        | first).columns.values() | list -%}
    {%- set table = namespace(exists=false) -%}
    {%- for row in list_relations_without_caching(relation.without_identifier()) -%}
      {%- if row['schema'] == relation.schema and row['name'] == relation.identifier -%}
        {%- set table.exists = true -%}
      {%- endif -%}
    {%- endfor -%}
    {%- set present = [] -%}
    {%- if table.exists -%}
      {%- for column in adapter.get_columns_in_relation(relation) -%}
        {%- do present.append(column.name | lower) -%}
      {%- endfor -%}
    {%- endif -%}
    (
    select
    {%- for column in declared %}
      {%- set data_type = snyk_json_type() if column.data_type == 'json' else column.data_type %}
      {%- if column.name not in present %}
        null::{{ data_type }} as {{ adapter.quote(column.name) }}
      {%- elif column.data_type == 'json' %}
        {{ snyk_as_json(adapter.quote(column.name)) }} as {{ adapter.quote(column.name) }}
      {%- else %}
        {{ adapter.quote(column.name) }}::{{ data_type }} as {{ adapter.quote(column.name) }}
      {%- endif %}{{ ',' if not loop.last }}
    {%- endfor %}
    {%- if not table.exists %}
    where false  -- {{ relation }} does not exist (yet)
    {%- else %}
    from {{ relation }}
    {%- endif %}
    )
  {%- endif -%}
{% endmacro %}
