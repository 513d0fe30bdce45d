"""The words of the shared field checks (`fields.*`): a value of the wrong kind, out of range, too long.

`{field}` is the field's name as the message shows it: 'pilot' for a body field, concurrency for a
profile's; the page shows it as it is, since it is what the user finds in the form or the JSON.
"""

MESSAGES: dict[str, str | dict[str, str]] = {
    "fields.not_flag": "{field} must be true or false",
    "fields.not_choice": "{field} must be one of {options}; got {got}",
    "fields.missing": "{field} is required",
    "fields.missing_meaning": "{field} must be {meaning}; got nothing",
    "fields.bad_meaning": "{field} must be {meaning}; got {got}",
    "fields.not_number": "{field} must be a number",
    "fields.not_whole": "{field} must be a whole number",
    "fields.below": "{field} must be at least {low}; got {got}",
    "fields.outside": "{field} must be between {low} and {high}; got {got}",
    "fields.not_string": "{field} must be a string",
    "fields.surrogate": "{field} is not valid text: it holds a lone surrogate ({shown})",
    "fields.surrogate_bare": "{field} is not valid text: it holds a lone surrogate",
    "fields.too_many_chars": "{field} must be at most {limit:,} characters; got {size:,}",
    "fields.too_many_bytes": "{field} must be at most {limit} of text; got {size:,} bytes",
    "fields.not_json": "{field} is not plain JSON: {reason}",
}
