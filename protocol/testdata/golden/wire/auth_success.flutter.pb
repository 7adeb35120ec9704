
sockudo:auth_success75{"client_id":"user-42","jti":"6d1f","exp":1710007200}