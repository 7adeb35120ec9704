
client-typingpresence-chat{"typing":true}*10