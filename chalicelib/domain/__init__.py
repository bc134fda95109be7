"""Pure product rules: no boto3, PynamoDB, Stripe or Chalice imports here."""
