
sockudo:ping