"""`digest preview`: a local server that shows each list's edition as it will be sent.

model (edition → rendered, personalized variant and its headers) → checks (links, images,
size, spam: spamassassin scores through SpamAssassin's Perl API) → watch (templates, config
and feeds polled for changes) → app (the WSGI app).
"""
