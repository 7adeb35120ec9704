
client-typingpresence-chat{"typing":true,"n":1.5}*10J9e0d