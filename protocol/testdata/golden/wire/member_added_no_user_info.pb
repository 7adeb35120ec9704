
sockudo_internal:member_addedpresence-room!
{"user_id":"11","user_info":{}}