// The Chinese of the server's `config.*` messages (English: console/messages/config.py). Strict JSON after `export default`.
export default {
}
