
!sockudo_internal:watchlist_events31{"events":[{"name":"online","user_ids":["777"]}]}