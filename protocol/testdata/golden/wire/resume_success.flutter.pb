
sockudo:resume_successN
L{"recovered":[{"channel":"orders","source":"hot","replayed":3}],"failed":[]}