
 sockudo_internal:presence_updatepresence-agents9
7{"user_id":"agent-1","user_info":{"status":"thinking"}}