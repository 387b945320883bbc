"""One JSON schema per stream, named after it; the org and group twins share one.

`audit_logs.json` and `memberships.json` serve the org and the group stream alike: each stream
makes its own partition key (`org_id` or `group_id`) a required string and names itself in the
title (`{noun}`).
"""
