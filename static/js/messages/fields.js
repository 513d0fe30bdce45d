// The Chinese of the server's `fields.*` messages (English: console/messages/fields.py). Strict JSON after `export default`.
export default {
  "fields.not_flag": "{field} 必须是 true 或 false",
  "fields.not_choice": "{field} 必须是 {options} 之一；收到的是 {got}",
  "fields.missing": "{field} 不能为空",
  "fields.missing_meaning": "{field} 必须是{meaning}；没有收到值",
  "fields.bad_meaning": "{field} 必须是{meaning}；收到的是 {got}",
  "fields.not_number": "{field} 必须是数字",
  "fields.not_whole": "{field} 必须是整数",
  "fields.below": "{field} 不能小于 {low}；收到的是 {got}",
  "fields.outside": "{field} 必须在 {low} 到 {high} 之间；收到的是 {got}",
  "fields.not_string": "{field} 必须是文本",
  "fields.surrogate": "{field} 不是有效的文本：含有落单的代理字符（{shown}）",
  "fields.surrogate_bare": "{field} 不是有效的文本：含有落单的代理字符",
  "fields.too_many_chars": "{field} 最多 {limit} 个字符；实际 {size} 个",
  "fields.too_many_bytes": "{field} 的文本最多 {limit}；实际 {size} 字节",
  "fields.not_json": "{field} 不是纯 JSON：{reason}"
}
