
sockudo:subscription_errorprivate-orderstr{"type":"AuthError","error":"Invalid signature: expected HMAC of \"1.2:private-orders\"","status":403,"code":4009}