
sockudo:token_expired#!{"code":40142,"reason":"expired"}