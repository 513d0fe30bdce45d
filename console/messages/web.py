"""The English words of the web family of messages (`web.*`); the page's table holds their Chinese.

Route refusals (a body that is not a JSON object, a bad query, an id not found), the guards' refusals
(Host, cross-site, content type, the access token), Werkzeug's HTTP errors and the console's own bug.
`{name}` is a body or query field as the user sends it; `{said}` is someone else's own words (the
JSON parser's, the OS's, Pillow's, Werkzeug's, an exception's), shown verbatim.
"""

MESSAGES: dict[str, str | dict[str, str]] = {
    # fields of a route's body and query
    "web.not_object": "{field} must be an object",
    "web.query_not_whole": "query '{name}' must be a whole number, got {got}",
    "web.query_below": "query '{name}' must be at least {low}",
    "web.query_above": "query '{name}' must be at most {high}",
    "web.query_not_one_of": "query '{name}' must be one of {options}",
    "web.query_not_choice": "query '{name}' must be one of {options}, got {got}",
    "web.not_choice": "'{name}' must be one of {options}, got {got}",
    "web.run_nothing_to_change": "nothing to change: a run's update takes {fields}",
    "web.result_nothing_to_change": "nothing to change: a result's update takes {fields}",
    "web.selection_unknown_field": "unknown field {field}: a selection takes {fields}",
    "web.tasks_not_ids": "'tasks' must be a list of task ids (strings)",
    "web.tasks_too_many": "'tasks' lists {count:,} ids; at most {limit:,} at once",
    # what a route looks for and does not find
    "web.no_run": "no run {id}",
    "web.no_task": "no task {id}",
    "web.no_result": "no result {id}",
    "web.no_source_image": "this task has no source image: it generates from its prompt",
    "web.image_missing": "the image file is missing from the cache",
    "web.thumbnail_failed": "cannot make a thumbnail: {said}",
    "web.zip_missing": "missing from the cache",
    "web.zip_left_out": "{name} (result {result}): {reason}",
    "web.zip_skipped": {"one": "{count} result is not in this ZIP; retry its task to fetch it again:",
                        "other": "{count} results are not in this ZIP; retry their tasks to fetch them again:"},
    "web.zip_no_room": ("the ZIP cannot be written in the temporary folder {folder} ({said}); free some space "
                        "there, or point TMPDIR elsewhere"),
    "web.debug_local_only": "debug logs are served to local clients only (ALLOW_REMOTE_DEBUG_LOG_API=1 allows others)",
    # captioning jobs
    "web.captioning_unknown_field": "unknown field {names}: captioning takes {fields}",
    "web.captioning_unknown_fields": "unknown fields {names}: captioning takes {fields}",
    "web.no_caption_job": "no captioning job {id} (jobs are forgotten when the server restarts)",
    "web.instruction_empty": "'instruction' must be a non-empty string: what to ask the model about each image",
    "web.api_not_object": "'api' must be an object of profile fields",
    "web.api_preset_not_name": "'api_preset' must be the name of an API preset, or null for the current settings",
    "web.api_preset_not_found": "'api_preset': {reason}",
    # bodies
    "web.body_missing": "expected a JSON object in the request body",
    "web.body_not_object": "the request body must be a JSON object, not {kind}",
    "web.json_too_deep": "invalid JSON: nested too deeply",
    "web.json_invalid": "invalid JSON: {said}",
    "web.not_json_type": "expected Content-Type: application/json, got {got}",
    "web.upload_type": ("expected Content-Type: application/json, or for files multipart/form-data with the "
                        "header '{header}: 1'; got {got}"),
    "web.upload_type_no_header": ("expected Content-Type: application/json, or for files multipart/form-data with "
                                  "the header '{header}: 1'; got {got} without that header"),
    # guards and access
    "web.host_not_allowed": ("Host '{host}' is not allowed: this server answers to localhost, 127.0.0.1 and [::1] "
                             "(protection against DNS rebinding); to use another name, start it with --host <that "
                             "address> or add the origin to ALLOWED_ORIGINS"),
    "web.cross_site_refused": ("cross-site request refused (Sec-Fetch-Site: {site}); use the console's own page, or "
                               "add the calling page's origin to ALLOWED_ORIGINS"),
    "web.cross_origin_refused": ("cross-origin request refused (Origin: {origin}); use the console's own page, or add "
                                 "that origin to ALLOWED_ORIGINS"),
    "web.token_needed": ("this console listens on {host} and needs its access token: open the URL it printed in the "
                         "terminal where it started (…/?token=…), or send the header '{header}'"),
    "web.token_needed_everywhere": ("this console listens on all addresses and needs its access token: open the URL it "
                                    "printed in the terminal where it started (…/?token=…), or send the header "
                                    "'{header}'"),
    # Werkzeug's HTTP errors (their English is Werkzeug's own description) and the console's bug
    "web.http_400": "The browser (or proxy) sent a request that this server could not understand.",
    "web.http_404": ("The requested URL was not found on the server. If you entered the URL manually please check "
                     "your spelling and try again."),
    "web.http_405": "The method is not allowed for the requested URL.",
    "web.http_413": "The data value transmitted exceeds the capacity limit.",
    "web.http_415": "The server does not support the media type transmitted in the request.",
    "web.http_416": "The server cannot provide the requested range.",
    "web.http_other": "{said}",
    "web.bug": "the console hit a bug ({kind}: {said}); the details are in {log} in the data folder",
}
