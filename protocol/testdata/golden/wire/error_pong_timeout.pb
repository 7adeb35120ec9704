
sockudo:error;9{"code":4201,"message":"Pong reply not received in time"}