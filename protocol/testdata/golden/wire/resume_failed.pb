
sockudo:resume_failedordersA
?{"code":"position_expired","reason":"recovery_window_exceeded"}