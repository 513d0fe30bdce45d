// The Chinese of the server's `upstream.*` messages (English: console/messages/upstream.py). Strict JSON after `export default`.
export default {
}
