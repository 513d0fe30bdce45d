// The Chinese of the server's `engine.*` messages (English: console/messages/engine.py). Strict JSON after `export default`.
export default {
  "engine.interrupted": "已中断"
}
