/**
 * The mail-crypt configuration differential tests give both servers: ISPmail's
 * (per-user keys, the private key encrypted with the login password, which the
 * static passdb hands to the mail side as `userdb_mail_crypt_private_password`).
 */
export const CRYPT_CONF = `mail_attribute_dict = file:%h/Maildir/dovecot-attributes
mail_plugins = $mail_plugins mail_crypt
plugin {
  mail_crypt_curve = prime256v1
  mail_crypt_save_version = 2
  mail_crypt_require_encrypted_user_key = yes
}
`;
export const CRYPT_PASSDB = 'passdb {\n  driver = static\n  args = password=pass userdb_mail_crypt_private_password=%w\n}';
