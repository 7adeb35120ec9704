
sockudo_internal:member_removedpresence-room
{"user_id":"11"}