
sockudo:connection_established>
<{"socket_id":"5830219471.2049913381","activity_timeout":120}