// TLS material for Conflux: a CA, node certificates, admin and client certificates, the SANs a
// StatefulSet pod needs, role checks for the admin API, and writing PEM bundles.

export { type CertBundle, type WrittenFile, writeCertBundle } from './bundle.js';
export { CertError, type CertErrorCode } from './errors.js';
export {
  ADMIN_ORGANIZATION,
  type CaOptions,
  type CertKeyPair,
  CLIENT_ORGANIZATION,
  type ClientCertOptions,
  generateAdminCert,
  generateCa,
  generateClientCert,
  generateNodeCert,
  NODE_ORGANIZATION,
  type NodeCertOptions,
  type Validity,
} from './generate.js';
export {
  type CertificateInput,
  isAdminCertificate,
  isAuthorizedAdmin,
  subjectOrganizations,
} from './roles.js';
export { type Sans, type StatefulSetSansOptions, statefulSetSans } from './sans.js';
