"""The English words of the config family of messages (`config.*`); the page's table holds their Chinese.

The API profile's field checks (console/profile.py), proxy URLs (console/proxyurl.py), the URL policy's
refusals (console/netguard.py: `{purpose}` and `{hint}` are messages the policy's maker gives), settings,
presets, saved prompts and config import (console/config/), and the config routes' own refusals.
`{field}` is a profile field as the user finds it in the form or the JSON (`api_url`,
`extra_headers['X-Key']`, or a pooled key's field, itself a message); `{where}` is where in a
document a problem is (`presets.api['name']`); `{url}` is a URL as it may be shown (credentials
masked); `{said}` is someone else's own words (the resolver's, the URL parser's), shown verbatim.
"""

MESSAGES: dict[str, str | dict[str, str]] = {
    # the API profile as a whole
    "config.profile_not_object": "the API profile must be a JSON object",
    "config.profile_unknown_fields": "unknown API profile field(s): {names}",
    "config.not_object": "{field} must be a JSON object",
    # URLs of the profile (api_url, a pooled key's api_url)
    "config.url_masked_query": ("{field}: a masked value (••••••••) in the query stands for no stored value; "
                                "type the value itself: {url!r}"),
    "config.url_invalid": "{field} is not a valid URL ({said}): {url!r}",
    "config.url_scheme": "{field} must start with http:// or https://; got {url!r}",
    "config.url_no_host": "{field} has no host name: {url!r} (expected like https://api.example.com/v1)",
    "config.url_credentials": ("{field} cannot hold a user name or password (profiles are shown on the page and "
                               "exported); put the key in api_key or in an extra header instead"),
    # what can be sent in an HTTP header (keys, extra headers): stray characters of a paste or an input method
    "config.key_is_mask": ("{field}: the mask (••••••••) stands for a stored key and is not a key itself; "
                           "type the real key"),
    "config.mask_unknown": "{field}: the mask {mask!r} stands for no stored value; type the value itself",
    "config.header_bad_char": ("{field}: {char} at position {position} cannot be sent in an HTTP header "
                               "(only visible ASCII characters can); it may be a stray character from copy-paste "
                               "or an input method; retype it"),
    "config.char_line_break": "a line break",
    "config.char_space": "a space (U+{point})",
    "config.char_wide_space": "a space (U+{point})",  # U+3000, an input method's full-width space
    "config.char_invisible": "an invisible character (U+{point})",
    "config.char_visible": "'{char}' (U+{point})",
    "config.char_wide": "'{char}' (U+{point})",  # a full-width form of an ASCII character (ＡＢＣ，：)
    "config.char_cjk_punctuation": "'{char}' (U+{point})",  # a Chinese punctuation mark (。、“”)
    "config.char_cjk": "'{char}' (U+{point})",  # a Chinese character
    # extra_headers
    "config.headers_not_object": "{field} must be an object of header names to string values",
    "config.header_bad_name": ("{field}: {header!r} is not a valid header name "
                               "(letters, digits and !#$%&'*+-.^_`|~ only)"),
    "config.header_reserved": "{field}: {header} is set by the console itself and cannot be overridden",
    # proxy URLs: a profile's proxy_url says "{field} {problem}"
    "config.proxy_field": "{field} {problem}",
    "config.proxy_bad_char": ("has a character that cannot be in a URL at position {position} (U+{point}); "
                              "it may be a stray character from copy-paste"),
    "config.proxy_bad_port": "has an invalid port: {url}",
    "config.proxy_scheme": "must start with http://, https://, socks5:// or socks5h:// (like {example}); got {url}",
    "config.proxy_no_host": "has no host (expected like {example}); got {url}",
    "config.proxy_needs_port": "needs a port, like socks5://127.0.0.1:1080; got {url}",
    "config.proxy_extra": "must be scheme://host:port with nothing after it; got {url}",
    "config.proxy_credentials": ("cannot hold a user name or password here (profiles are shown on the page and "
                                 "exported); set a proxy that needs a login with PROXY_URL when starting the server"),
    # key_pool
    "config.pool_not_list": ("{field} must be a list of keys, each "
                             "{{\"api_key\": …, \"api_url\": …, \"concurrency\": …}}"),
    "config.pool_too_many": "{field} holds {count} keys; at most {limit} fit beside the profile's own",
    "config.pool_key": "{field}: key {number}",
    "config.pool_key_field": "{field}: key {number} {name}",
    "config.pool_entry_not_object": "{where} must be an object with api_key (and optionally api_url, concurrency)",
    "config.pool_entry_unknown": "{where}: unknown field(s) {names} (expected api_key, api_url, concurrency)",
    "config.pool_entry_mask": "{where}: the mask {mask} stands for no stored key; type the key itself",
    "config.pool_entry_no_key": "{where} has no api_key; type the key or remove the row",
    "config.pool_entry_repeats": "{where} repeats key {other} (same key)",
    "config.pool_entry_repeats_url": "{where} repeats key {other} (same key and URL)",
    "config.pool_repeats_own": "key_pool: key {number} repeats the profile's own key (key 1)",
    # delivery
    "config.batch_with_pool": ("delivery: 'batch' works with one key (a batch belongs to the key that submitted it); "
                               "empty key_pool or choose live delivery"),
    "config.batch_refused": "delivery: {problem}",
    # prices
    "config.prices_not_object": "{field} must be an object such as {{\"image\": 0.04, \"currency\": \"USD\"}}",
    "config.prices_unknown": "{field}: unknown field(s) {names} (expected {expected}, batch_discount, currency)",
    "config.price_not_number": "{field} must be a number (money, 0 or more); got {got}",
    "config.price_outside": "{field} must be between 0 and {high}; got {got}",
    "config.currency_bad": "{field} must be a currency code such as USD or CNY; got {got}",
    # the URL policy (which hosts an API call or a download may reach)
    "config.policy_scheme": "{purpose} must use http or https: {url}",
    "config.policy_no_host": "{purpose} has no host: {url}",
    "config.policy_bad_port": "{purpose} has an invalid port: {url}",
    "config.policy_not_listed": "{purpose} host {host} is not on the allowlist ({allowlist})",
    "config.policy_private": "{purpose} {url} points at a private or loopback address ({addresses})",
    "config.policy_private_hint": "{purpose} {url} points at a private or loopback address ({addresses}); {hint}",
    "config.policy_own": "{purpose} {url} points at this console itself (port {port}); the console never calls itself",
    "config.host_unresolved": "cannot resolve host {host!r}: {said}",
    "config.host_no_address": "cannot resolve host {host!r}: no address",
    # presets, settings and the import document
    "config.at": "{where}: {problem}",
    "config.save_preset_where": "save preset '{name}'",
    "config.preset_kind": "preset kind must be 'api' or 'save', got '{kind}'",
    "config.preset_name_not_string": "a preset name must be a string",
    "config.preset_name_length": "a preset name must be 1-{limit} characters long",
    "config.preset_name_chars": "a preset name must not contain '/', control characters or lone surrogates: {name!r}",
    "config.no_preset": "there is no {kind} preset named '{name}'",
    "config.settings_not_object": "expected a JSON object with api and/or save",
    "config.settings_unknown": "unknown section(s): {names} (expected api, save)",
    "config.presets_not_object": "presets: expected a JSON object with api and/or save",
    "config.presets_unknown": "presets: unknown kind(s): {names} (expected api, save)",
    "config.presets_kind_not_object": "presets.{kind}: expected a JSON object of name to preset",
    "config.import_not_object": "the import must be a JSON object",
    "config.import_format": "not an Image Batch Console config export (format {format!r})",
    "config.import_version": "unsupported config version {version!r}; this console reads version 1",
    "config.import_nothing": "nothing to import: expected \"settings\", \"presets\" and/or \"snippets\"",
    # saved prompts
    "config.prompt_blank": "{where}: the prompt text must be non-blank text",
    "config.prompt_surrogate": "{where}: the prompt text is not valid text: it holds a lone surrogate",
    "config.prompt_too_long": "{where}: the prompt text is longer than {limit} characters",
    "config.snippets_not_object": "{where}: expected a JSON object of name to prompt text",
    "config.snippets_too_many": "{where}: {count} saved prompts; at most {limit}",
    "config.snippets_full": "at most {limit} saved prompts",
    "config.no_snippet": "there is no saved prompt named '{name}'",
    "config.snippet_exists": "a saved prompt named '{name}' exists already",
    # the config routes
    "config.api_not_object": "'api' must be an object",
}
