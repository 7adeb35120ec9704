
!sockudo_internal:watchlist_events_]{"events":[{"name":"online","user_ids":["777"]},{"name":"offline","user_ids":["778","779"]}]}