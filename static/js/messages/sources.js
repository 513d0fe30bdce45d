// The Chinese of the server's `sources.*` messages (English: console/messages/sources.py). Strict JSON after `export default`.
export default {
}
