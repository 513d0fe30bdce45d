// The Chinese of the server's `review.*` messages (English: console/messages/review.py). Strict JSON after `export default`.
export default {
  "review.blank": "几乎是单一颜色（色调只跨 255 级中的 {spread} 级）",
  "review.off_size_requested": "{size} 与请求尺寸的宽高比相差 {off}%",
  "review.off_size_source": "{size} 与原图 {source} 的宽高比相差 {off}%",
  "review.unchanged": "与原图几乎相同（各格平均只差 {mean} 级）",
  "review.unrelated": "与原图几乎没有共同结构（相关系数 {correlation}）",
  "review.near_duplicate": "与任务 #{number}（{name}）的结果是同一张图"
}
