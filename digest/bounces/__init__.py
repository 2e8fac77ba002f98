"""What comes back after sending over SMTP: bounces (DSNs and looser formats), complaints
(ARF feedback reports) and unsubscribes mailed to the List-Unsubscribe mailto:.

``verp`` makes and finds the return-path tokens, ``parse`` reads one message into a Report
(deciding nothing), ``policy`` decides what a report does, ``process`` attributes it and applies
the decision to the store, ``mailboxes`` reads Maildir, mbox, .eml files and IMAP.
"""
